"""The Keras model that trains a network: a custom ``train_step`` with AGC."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tf_keras as keras

from bnn_keras.training.agc import adaptive_clip


class TrainingModel(keras.Model):
    """Wraps a functional ``net`` and trains it with adaptive gradient clipping.

    Each step: forward, loss, gradients, all-reduce across replicas (once), AGC on the
    aggregated gradients of every variable except those of the layers named in
    ``agc_exclude`` (the final classifier), then the optimizer update. Save ``net``, not
    this wrapper: it is the deployable model.

    Example:
        ```python
        trainer = TrainingModel(net, agc_clip=0.02)
        trainer.compile(optimizer="adam", loss=..., metrics=["accuracy"])
        trainer.fit(train_ds, epochs=5)
        ```
    """

    def __init__(self, net: keras.Model, agc_clip: float = 0.02,
                 agc_exclude: Sequence[str] = ("classifier",), **kwargs):
        super().__init__(**kwargs)
        self.net = net
        self.agc_clip = float(agc_clip)
        excluded = [net.get_layer(n) for n in agc_exclude if n in {lay.name for lay in net.layers}]
        self._agc_excluded = {v.ref() for layer in excluded for v in layer.trainable_weights}

    def call(self, inputs, training=None):
        return self.net(inputs, training=training)

    def clip_gradients(self, grads: list, variables: list) -> list:
        """AGC on every variable not excluded; the excluded keep their gradients."""
        if self.agc_clip <= 0:
            return grads
        keep = [v.ref() in self._agc_excluded for v in variables]
        clipped = adaptive_clip(grads, variables, self.agc_clip)
        return [g if k else c for g, c, k in zip(grads, clipped, keep)]

    def train_step(self, data):
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            logits = self(x, training=True)
            loss = self.compiled_loss(y, logits, regularization_losses=self.losses)
        variables = self.trainable_variables
        grads = tape.gradient(loss, variables)
        ctx = tf.distribute.get_replica_context()
        aggregated = ctx is not None and ctx.num_replicas_in_sync > 1
        if aggregated:  # all-reduce first so AGC sees the global gradient, once
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        grads = self.clip_gradients(grads, variables)
        if aggregated:
            self.optimizer.apply_gradients(zip(grads, variables),
                                           skip_gradients_aggregation=True)
        else:
            self.optimizer.apply_gradients(zip(grads, variables))
        self.compiled_metrics.update_state(y, logits)
        return {m.name: m.result() for m in self.metrics}
