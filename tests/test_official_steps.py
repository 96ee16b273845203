"""Our training step is the official one: three optimizer steps, weight for weight.

Each fixture in ``tests/data/official_steps`` was made by ``tests/make_step_fixtures.py``:
the official network on seeded weights, a fixed batch, three optimizer steps as the
official training script does them with the recipe's values. Here the same network is
imported, trained three steps by :func:`bnn_keras.training.train_model.build_trainer`
from the same recipe (its parameter groups, weight decay, AGC or norm clipping, loss,
optimizer, the learning rate of the epoch, BNext's temperature), and every tensor must
end where the official one did: relative error under 1e-5 (small tensors compared
element by element, the others through 8 seeded projections). Both run in float64, so
no sign depends on rounding (see the fixture maker). Also the learning rates of the
first, a middle and the last epoch and the distillation loss. No torch needed.
"""

import zlib

import numpy as np
import pytest
import tf_keras as keras

from bnn_keras.training.distill import distribution_loss
from bnn_keras.training.official_steps import CASES, TOLERANCE, our_steps, weight_errors
from bnn_keras.training.optim import build_schedule

#: the case that also checks the comparison can fail (an official tensor moved by ~1e-3)
SENSITIVITY_CASE = "bnn_nobn-reactnet_18-bf"
#: the losses' relative error: float64 steps give at most 8e-9 (the worst case, ReActNet-A
#: bf); a loss computed in float32 anywhere in the step gives 3e-8 to 1e-7
LOSS_TOLERANCE = 2e-8


@pytest.mark.parametrize("name", CASES)
@pytest.mark.isolated  # float64 weights, optimizer state and graphs of full nets
def test_three_steps_end_where_the_official_steps_did(name):
    try:
        _check_case(name)
    finally:
        keras.backend.set_floatx("float32")


def _check_case(name: str) -> None:
    keras.backend.set_floatx("float64")
    keras.utils.set_random_seed(0)  # as the conftest does
    manifest, arrays, config, net, losses = our_steps(name)
    meta = manifest["meta"]
    np.testing.assert_allclose(losses, arrays["losses"], rtol=LOSS_TOLERANCE)
    errors = weight_errors(manifest, arrays, net, meta["source"], meta["model"])
    assert len(errors) == sum(len(layer.trainable_weights) + (
        len(layer.non_trainable_weights) - hasattr(getattr(layer, "kernel_quantizer", None),
                                                   "temperature")
        - isinstance(layer, keras.layers.BatchNormalization))
        for layer in net.layers)
    worst = sorted(errors.items(), key=lambda kv: -kv[1])[:5]
    assert worst[0][1] < TOLERANCE, worst

    schedule = build_schedule(config, 100)
    lrs = [float(schedule.at_epoch(e)) for e in meta["epochs_checked"]]
    np.testing.assert_allclose(lrs, arrays["lrs"], rtol=1e-6, atol=1e-12)
    if arrays["kd_check"].size:
        student = np.random.default_rng(1).normal(0, 2, arrays["teacher_logits"].shape[1:])
        ours = float(distribution_loss(student.astype(np.float32),
                                       arrays["teacher_logits"][0]))
        np.testing.assert_allclose(ours, arrays["kd_check"][0], rtol=1e-6)
    if name == SENSITIVITY_CASE:
        moved = dict(arrays)
        key = next(k for k in manifest["whole"] if k.endswith("move0.bias"))
        moved[f"after/{key}"] = arrays[f"after/{key}"] + 1e-3 * (
            1 + np.random.default_rng(zlib.crc32(key.encode())).random(
                arrays[f"after/{key}"].shape))
        errors = weight_errors(manifest, moved, net, meta["source"], meta["model"])
        assert max(errors.values()) > 100 * TOLERANCE


def test_batchnorm_keeps_the_unbiased_variance():
    """Float32 training (the fused kernel) updates the moving variance with the
    Bessel-corrected batch variance, as PyTorch's BatchNorm2d does."""
    keras.backend.set_floatx("float32")
    layer = keras.layers.BatchNormalization(momentum=0.9)
    x = np.random.default_rng(0).normal(2.0, 3.0, (4, 3, 3, 5)).astype(np.float32)
    layer(x, training=True)
    expected = 0.9 * 1.0 + 0.1 * x.reshape(-1, 5).var(axis=0, ddof=1)
    np.testing.assert_allclose(layer.moving_variance.numpy(), expected, rtol=1e-5)
