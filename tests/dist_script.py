"""Worker script for tests/test_distribute.py: train a few steps, save the weights.

python tests/dist_script.py mirrored OUT_DIR
    one process with 2 logical CPUs; writes OUT_DIR/<job>.npz for every job of JOBS
    (single device, and MirroredStrategy over the 2 CPUs)
python tests/dist_script.py multiworker OUT_DIR   (TF_CONFIG set by the caller)
    the chief alone writes OUT_DIR/multiworker-bf-w<index>.npz, then trains on one device and
    writes OUT_DIR/single-bf.npz
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

import bnn_keras  # noqa: F401  (before TensorFlow: it selects Keras 2)

mode, out_dir = sys.argv[1], Path(sys.argv[2])

import tensorflow as tf  # noqa: E402

if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import tf_keras as keras  # noqa: E402

from bnn_keras.models.reactnet_resnet import (  # noqa: E402
    ReActNetResNetOptions,
    build_reactnet_resnet,
)
from bnn_keras.training import TrainingModel, adaptive_clip  # noqa: E402
from bnn_keras.training.distribute import (  # noqa: E402
    global_batches_dataset,
    is_chief,
    make_strategy,
    with_sync_batch_norm,
)

GLOBAL_BATCH, STEPS, SHAPE = 8, 4, (16, 16, 3)
# job name -> (strategy, variant, flags)
JOBS = {
    "single-bf": ("default", "bf", ()),
    "single-bn": ("default", "bn", ()),
    "mirrored-bf": ("mirrored", "bf", ()),
    "mirrored-bf-agc-per-replica": ("mirrored", "bf", ("agc-per-replica",)),
    "mirrored-bn": ("mirrored", "bn", ()),
    "mirrored-bn-sync": ("mirrored", "bn", ("sync-bn",)),
}


class PerReplicaAGC(TrainingModel):
    """The wrong order, as a negative control: AGC before the all-reduce."""

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = self.compiled_loss(y, self(x, training=True))
        variables = self.trainable_variables
        grads = adaptive_clip(tape.gradient(loss, variables), variables, self.agc_clip)
        self.optimizer.apply_gradients(zip(grads, variables))
        return {}


def build(variant):
    return build_reactnet_resnet((1, 1), ReActNetResNetOptions(widths=(8, 16)),
                                 variant=variant, num_classes=4, input_shape=SHAPE,
                                 name="tiny")


def train(strategy, variant, flags):
    keras.utils.set_random_seed(0)
    initial = build(variant).get_weights()
    rng = np.random.default_rng(0)
    images = rng.standard_normal((GLOBAL_BATCH * STEPS, *SHAPE)).astype(np.float32)
    labels = rng.integers(0, 4, GLOBAL_BATCH * STEPS).astype(np.int32)
    with strategy.scope():
        net = build(variant)
        if "sync-bn" in flags:
            net = with_sync_batch_norm(net)
        net.set_weights(initial)
        cls = PerReplicaAGC if "agc-per-replica" in flags else TrainingModel
        trainer = cls(net, agc_clip=0.01)
        trainer.compile(optimizer=keras.optimizers.SGD(0.5),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data = global_batches_dataset(images, labels, GLOBAL_BATCH, strategy)
    trainer.fit(data, epochs=1, steps_per_epoch=STEPS, verbose=0)
    return net.get_weights()


if mode == "multiworker":
    # the strategy first: multi-worker collectives must be configured before TF starts
    strategy = make_strategy("multiworker")
    weights = train(strategy, "bf", ())
    if is_chief():
        index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
        np.savez(out_dir / f"multiworker-bf-w{index}.npz", *weights)
        # the reference, here: one device, same global batches in the same order
        np.savez(out_dir / "single-bf.npz", *train(make_strategy("default"), "bf", ()))
    print("replicas", strategy.num_replicas_in_sync)
else:
    strategies = {"default": make_strategy("default"), "mirrored": make_strategy("mirrored")}
    for job, (name, variant, flags) in JOBS.items():
        np.savez(out_dir / f"{job}.npz", *train(strategies[name], variant, flags))
        print(job, "replicas", strategies[name].num_replicas_in_sync, flush=True)
