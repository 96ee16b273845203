"""The Keras model that trains a network: a custom ``train_step`` with AGC, gradient-norm
clipping, weight decay and (optionally) distillation."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tf_keras as keras

from bnn_keras.fusion import fusing_inference
from bnn_keras.training.agc import adaptive_clip
from bnn_keras.training.config import TrainConfig
from bnn_keras.training.distill import for_loss, multi_teacher_loss
from bnn_keras.training.optim import (
    WeightDecay,
    build_optimizer,
    current_learning_rate,
    weight_decay_from_config,
)
from bnn_keras.training.precision import with_loss_scaling


class TrainingModel(keras.Model):
    """Wraps a functional ``net`` and trains it with adaptive gradient clipping.

    Each step: forward, loss, gradients, all-reduce across replicas (once), AGC on the
    aggregated gradients of every variable except those of the layers named in
    ``agc_exclude`` (the final classifier), global-norm clipping to ``grad_clip_norm``
    (0: off), then ``weight_decay`` (coupled L2 added to the gradients, or decoupled
    AdamW-style decay of the weights) and the optimizer update.

    With a ``teacher`` the loss is the distributional loss against its softmax (no label
    term); with ``assistants`` too, BNext's consecutive KD: the assistant selected by
    ``assistant_index`` (set per epoch by
    :class:`~bnn_keras.training.distill.TeacherSwitch`) and the teacher, weighted per
    sample (see :mod:`bnn_keras.training.distill`). Evaluation always uses the compiled
    (label) loss, on a forward traced with its element-wise chains fused
    (:func:`bnn_keras.fusion.fusing_inference`: the same logits, fewer passes). Save
    ``net``, not this wrapper: it is the deployable model.

    Mixed precision (``net`` built under a mixed policy, see
    :mod:`bnn_keras.training.precision`): the loss is computed on float32 logits; with a
    ``LossScaleOptimizer`` the loss is scaled before the backward pass and the gradients
    unscaled before clipping, and a step with non-finite gradients is skipped by the
    optimizer (decoupled weight decay still applies on it).

    Example:
        ```python
        trainer = TrainingModel(net, agc_clip=0.02)
        trainer.compile(optimizer="adam", loss=..., metrics=["accuracy"])
        trainer.fit(train_ds, epochs=5)
        ```
    """

    def __init__(self, net: keras.Model, agc_clip: float = 0.02,
                 agc_exclude: Sequence[str] = ("classifier",), *,
                 grad_clip_norm: float = 0.0, weight_decay: WeightDecay | None = None,
                 teacher: keras.Model | None = None,
                 assistants: Sequence[keras.Model] = (),
                 kd_weighting: str = "batch_softmax_ce",
                 **kwargs):
        super().__init__(**kwargs)
        self.net = net
        self.agc_clip = float(agc_clip)
        self.grad_clip_norm = float(grad_clip_norm)
        self.weight_decay = (weight_decay or WeightDecay()).bind(net)
        excluded = [net.get_layer(n) for n in agc_exclude if n in {lay.name for lay in net.layers}]
        self._agc_excluded = {v.ref() for layer in excluded for v in layer.trainable_weights}
        self._agc_per_element = {v.ref() for layer in net.layers if hasattr(layer, "gain")
                                 for v in [layer.gain]}
        self.teacher = teacher
        self.assistants = list(assistants)
        self.kd_weighting = kd_weighting
        self.assistant_index = tf.Variable(0, dtype=tf.int32, trainable=False,
                                           name="assistant_index")
        self.kd_loss_tracker = keras.metrics.Mean(name="kd_loss") if teacher is not None \
            else None

    def call(self, inputs, training=None):
        return self.net(inputs, training=training)

    def clip_gradients(self, grads: list, variables: list) -> list:
        """AGC on every variable not excluded; the excluded keep their gradients."""
        if self.agc_clip <= 0:
            return grads
        keep = [v.ref() in self._agc_excluded for v in variables]
        clipped = adaptive_clip(grads, variables, self.agc_clip,
                                elementwise=[v.ref() in self._agc_per_element
                                             for v in variables])
        return [g if k else c for g, c, k in zip(grads, clipped, keep)]

    def teacher_logits(self, x: tf.Tensor) -> list[tf.Tensor]:
        """The logits of the active teachers: ``[assistant, teacher]`` or ``[teacher]``."""
        logits = []
        if self.assistants:
            branches = [lambda a=a: for_loss(a(x, training=False))
                        for a in self.assistants]
            logits.append(tf.switch_case(tf.convert_to_tensor(self.assistant_index), branches)
                          if len(branches) > 1 else branches[0]())
        logits.append(for_loss(self.teacher(x, training=False)))
        return [tf.stop_gradient(t) for t in logits]

    def train_step(self, data):
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            logits = for_loss(self(x, training=True))  # a mixed net's loss in float32
            if self.teacher is not None:
                loss, _ = multi_teacher_loss(logits, self.teacher_logits(x), self.kd_weighting)
                if self.losses:
                    loss += tf.add_n(self.losses)
                # per-replica mean: scale so the all-reduced SUM is the global mean, as
                # compiled_loss does for the label loss
                kd_loss = loss
                loss = kd_loss / tf.distribute.get_strategy().num_replicas_in_sync
            else:
                loss = self.compiled_loss(y, logits, regularization_losses=self.losses)
            if self.loss_scaled:
                scaled_loss = self.optimizer.get_scaled_loss(loss)
        variables = self.trainable_variables
        if self.loss_scaled:  # AGC and clipping see the true gradients
            grads = self.optimizer.get_unscaled_gradients(tape.gradient(scaled_loss, variables))
        else:
            grads = tape.gradient(loss, variables)
        ctx = tf.distribute.get_replica_context()
        aggregated = ctx is not None and ctx.num_replicas_in_sync > 1
        if aggregated:  # all-reduce first so AGC sees the global gradient, once
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        grads = self.clip_gradients(grads, variables)
        if self.grad_clip_norm > 0:
            grads, _ = tf.clip_by_global_norm(grads, self.grad_clip_norm)
        grads = self.weight_decay.add_l2(grads, variables)
        self.weight_decay.decay(variables, current_learning_rate(self.optimizer))
        if aggregated:
            self.optimizer.apply_gradients(zip(grads, variables),
                                           skip_gradients_aggregation=True)
        else:
            self.optimizer.apply_gradients(zip(grads, variables))
        self.compiled_metrics.update_state(y, logits)
        if self.kd_loss_tracker is not None:
            self.kd_loss_tracker.update_state(kd_loss)
            return {"loss": self.kd_loss_tracker.result(),
                    **{m.name: m.result() for m in self.compiled_metrics.metrics}}
        return {m.name: m.result() for m in self.metrics}

    @property
    def loss_scaled(self) -> bool:
        """Whether the optimizer scales the loss (``mixed_float16``)."""
        return isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer)

    def test_step(self, data):
        x, y = data[0], data[1]
        with fusing_inference():  # a graph that is run, never converted
            logits = for_loss(self(x, training=False))
        self.compiled_loss(y, logits, regularization_losses=self.losses)
        self.compiled_metrics.update_state(y, logits)
        return {m.name: m.result() for m in self.metrics if m is not self.kd_loss_tracker}


class SmoothedSparseCE(keras.losses.Loss):
    """Cross-entropy on integer labels with label smoothing: the target is
    ``(1 - eps) * onehot + eps / classes``, as the official ``CrossEntropyLabelSmooth``."""

    def __init__(self, num_classes: int, smoothing: float, name: str = "smoothed_ce"):
        super().__init__(name=name)
        self.num_classes = num_classes
        self.smoothing = smoothing

    def call(self, y_true, y_pred):
        onehot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), self.num_classes)
        return keras.losses.categorical_crossentropy(
            onehot, y_pred, from_logits=True, label_smoothing=self.smoothing)


def build_trainer(config: TrainConfig, net: keras.Model, num_classes: int,
                  steps_per_epoch: int, teacher: keras.Model | None = None,
                  assistants: Sequence[keras.Model] = ()) -> TrainingModel:
    """The compiled :class:`TrainingModel` of a run: ``config``'s clipping, weight decay,
    distillation, loss and optimizer around ``net``."""
    trainer = TrainingModel(net, agc_clip=config.agc_clip, grad_clip_norm=config.grad_clip_norm,
                            weight_decay=weight_decay_from_config(config), teacher=teacher,
                            assistants=assistants, kd_weighting=config.kd_weighting)
    loss = (SmoothedSparseCE(num_classes, config.label_smoothing) if config.label_smoothing
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    optimizer = with_loss_scaling(build_optimizer(config, steps_per_epoch), config.precision)
    trainer.compile(optimizer=optimizer, loss=loss,
                    metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return trainer
