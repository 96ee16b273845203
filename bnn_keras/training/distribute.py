"""TensorFlow distribution strategies for training: one name per strategy, the chief
rule for multi-worker runs, and synchronised BatchNorm on request.

Learning-rate scaling: ``--batch-size`` is the *global* batch, split evenly across
replicas, so the optimisation is the same as one device with that batch; keep the
learning rate of the recipe for the same global batch (scale it linearly only if you
change the global batch).
"""

from __future__ import annotations

import json
import os

import tensorflow as tf
import tf_keras as keras

from bnn_keras.errors import BnnError, first_line
from bnn_keras.training.config import STRATEGIES


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """The strategy called ``name`` (one of :data:`STRATEGIES`).

    ``multiworker`` reads the cluster from ``TF_CONFIG``; ``tpu`` needs a reachable TPU.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise BnnError("--strategy multiworker needs TF_CONFIG describing the cluster "
                           "(see README: training on several machines)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.OpError) as err:
            raise BnnError(f"no TPU found: {first_line(err)}") from None
        return tf.distribute.TPUStrategy(resolver)
    raise BnnError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


def is_chief() -> bool:
    """Whether this process writes checkpoints, exports and logs (task 0 or the chief)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    has_chief = "chief" in config.get("cluster", {})
    return task.get("type") == "worker" and task.get("index", 0) == 0 and not has_chief


def with_sync_batch_norm(model: keras.Model) -> keras.Model:
    """A copy of ``model`` whose BatchNorm layers average statistics over all replicas."""

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            config["synchronized"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def global_batches_dataset(images, labels, global_batch: int, strategy: tf.distribute.Strategy):
    """Distribute fixed global batches so that worker ``w`` of ``W`` gets rows
    ``[w * B/W, (w+1) * B/W)`` of every global batch, in order (no shuffling), and each
    worker's replicas split that slice in order. One device sees exactly the global
    batches, so runs on different cluster shapes see the same data."""
    if global_batch % strategy.num_replicas_in_sync:
        raise BnnError(f"global batch {global_batch} is not divisible by "
                       f"{strategy.num_replicas_in_sync} replicas")

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        # one input pipeline per worker (distribute_datasets_from_function's contract)
        per_worker = global_batch // max(context.num_input_pipelines, 1)
        w = context.input_pipeline_id
        ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(global_batch,
                                                                        drop_remainder=True)
        ds = ds.map(lambda x, y: (x[w * per_worker:(w + 1) * per_worker],
                                  y[w * per_worker:(w + 1) * per_worker]))
        return ds.unbatch().batch(context.get_per_replica_batch_size(global_batch))

    return strategy.distribute_datasets_from_function(dataset_fn)
