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
from bnn_keras.training.optim import build_schedule
from tests.official_steps import CASES, TOLERANCE, load_case, our_steps, weight_errors


@pytest.fixture(autouse=True)
def _float64():
    keras.backend.set_floatx("float64")
    yield
    keras.backend.set_floatx("float32")


@pytest.mark.parametrize("name", CASES)
def test_three_steps_end_where_the_official_steps_did(name):
    manifest, arrays, config, net, losses = our_steps(name)
    meta = manifest["meta"]
    np.testing.assert_allclose(losses, arrays["losses"], rtol=1e-6)
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


def test_a_fixture_sees_a_different_step():
    """The comparison can fail: an official tensor moved by about 1e-3 shows."""
    name = "bnn_nobn-reactnet_18-bf"
    manifest, arrays = load_case(name)
    arrays = dict(arrays)
    key = next(k for k in manifest["whole"] if k.endswith("move0.bias"))
    arrays[f"after/{key}"] = arrays[f"after/{key}"] + 1e-3 * (
        1 + np.random.default_rng(zlib.crc32(key.encode())).random(arrays[f"after/{key}"].shape))
    _, _, _, net, _ = our_steps(name)
    errors = weight_errors(manifest, arrays, net, manifest["meta"]["source"],
                           manifest["meta"]["model"])
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
