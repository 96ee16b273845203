"""Mixed-precision training: policy, float32 statistics of the WS layers, loss scaling,
the float32 network a run saves."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bnn_keras import models
from bnn_keras.errors import BnnError
from bnn_keras.layers import ScaledStdConv2D, ScaledStdQuantConv2D
from bnn_keras.models.dtypes import float32_model, is_mixed
from bnn_keras.training import TrainConfig, TrainingModel
from bnn_keras.training.precision import (
    cpu_has_bf16,
    precision_policy,
    resolve_precision,
    with_loss_scaling,
)


def test_resolve_precision(tmp_path, monkeypatch):
    from bnn_keras.training import precision as mod

    for name in ("float32", "mixed_bfloat16", "mixed_float16"):
        assert resolve_precision(name) == name
    with pytest.raises(BnnError, match="precision must be one of"):
        TrainConfig(precision="bfloat16")  # checked once, by the config
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f\n")
    assert not cpu_has_bf16(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_has_bf16(cpuinfo)
    assert not cpu_has_bf16(tmp_path / "missing")
    monkeypatch.setattr(mod, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto") == "float32"
    monkeypatch.setattr(mod, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto") == "mixed_bfloat16"


def test_policy_is_restored():
    before = keras.mixed_precision.global_policy().name
    with pytest.raises(RuntimeError), precision_policy("mixed_float16"):
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        raise RuntimeError
    assert keras.mixed_precision.global_policy().name == before


def test_policy_leaves_floatx_in_charge():
    """An unset global policy stays unset: set_floatx() still decides layers' dtypes, as
    the float64 comparisons with the official code need."""
    with precision_policy("float32"):
        pass
    keras.backend.set_floatx("float64")
    try:
        layer = ScaledStdQuantConv2D(4, 3, padding="same")
        y = layer(np.ones((1, 5, 5, 3)))
        assert layer.dtype == y.dtype == layer.kernel_quantizer.dtype == "float64"
    finally:
        keras.backend.set_floatx("float32")


@pytest.mark.isolated
@pytest.mark.parametrize("layer_class", [ScaledStdConv2D, ScaledStdQuantConv2D])
def test_ws_statistics_stay_float32(layer_class, rng):
    # every weight is 1 + a small offset: rounded to bfloat16 first, the offsets (and
    # the signs of the centred weights) would be lost
    x = rng.normal(size=(2, 6, 6, 8)).astype(np.float32)
    kernel = (1.0 + 1e-3 * rng.normal(size=(3, 3, 8, 16))).astype(np.float32)
    reference = layer_class(16, 3, padding="same")
    reference.build(x.shape)
    reference.set_weights([kernel] + reference.get_weights()[1:])
    expected = reference(x).numpy()
    with precision_policy("mixed_bfloat16"):
        mixed = layer_class(16, 3, padding="same")
        mixed.build(x.shape)
    mixed.set_weights(reference.get_weights())
    got = mixed(x)
    assert got.dtype == tf.bfloat16
    assert mixed.kernel.dtype == tf.float32 and mixed.gain.dtype == tf.float32
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got.numpy().astype(np.float32), expected, atol=0.02 * scale)


def _step(net, precision, steps=2):
    trainer = TrainingModel(net, agc_clip=0.02)
    trainer.compile(optimizer=with_loss_scaling(keras.optimizers.Adam(1e-3), precision),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = tf.random.normal((4, 32, 32, 3))
    y = tf.constant([0, 1, 2, 3])
    for _ in range(steps):
        out = trainer.train_step((x, y))
    return trainer, float(out["loss"])


def test_float64_network_keeps_a_float64_loss(rng):
    """Only a mixed net's 16-bit logits are cast to float32 for the loss: a float64 net's
    loss stays float64 (the step comparisons with the official code run in float64)."""
    keras.backend.set_floatx("float64")
    try:
        inputs = keras.Input((6,))
        net = keras.Model(inputs, keras.layers.Dense(3, name="classifier")(inputs))
        trainer = TrainingModel(net, agc_clip=0.0)
        trainer.compile("sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x = rng.normal(size=(4, 6)) * 3.0
        y = np.array([0, 1, 2, 0])
        logits = net(x).numpy()
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        expected = -log_p[np.arange(4), y].mean()
        loss = float(trainer.train_step((tf.constant(x), tf.constant(y)))["loss"])
        assert abs(loss - expected) < 1e-12 * abs(expected)  # float32 would be ~1e-8 off
    finally:
        keras.backend.set_floatx("float32")


@pytest.mark.isolated
@pytest.mark.slow
@pytest.mark.parametrize("name,variant", [
    ("reactnet_18", "bf"), ("reactnet_18", "bn"), ("reactnet_a", "bf"), ("birealnet_18", "bn"),
    ("bnext_tiny", "bf")])
def test_families_train_in_bfloat16(name, variant):
    with precision_policy("mixed_bfloat16"):
        net = models.create(name, variant, 10, (32, 32, 3))
    assert is_mixed(net) and net.output.dtype == tf.bfloat16
    before = [w.copy() for w in net.get_weights()]
    _, loss = _step(net, "mixed_bfloat16")
    assert np.isfinite(loss)
    assert all(v.dtype == tf.float32 for v in net.trainable_variables)
    changed = sum(not np.array_equal(a, b) for a, b in zip(before, net.get_weights()))
    assert changed > len(before) // 2


@pytest.mark.isolated
def test_float16_scales_the_loss_and_skips_overflowing_steps():
    from tests.tiny_models import NAME

    with precision_policy("mixed_float16"):
        net = models.create(NAME, "bf", 4, (32, 32, 3))
    trainer, loss = _step(net, "mixed_float16")
    assert trainer.loss_scaled and np.isfinite(loss)
    assert int(trainer.optimizer.iterations.numpy()) == 2
    before = net.get_weights()
    x = tf.fill((4, 32, 32, 3), 6e4)  # float16 overflows: the step must be skipped
    scale = float(trainer.optimizer.loss_scale.numpy())
    trainer.train_step((x, tf.constant([0, 1, 2, 3])))
    assert float(trainer.optimizer.loss_scale.numpy()) < scale
    assert all(np.array_equal(a, b) for a, b in zip(before, net.get_weights()))


@pytest.mark.isolated
def test_float32_copy_has_the_same_weights_and_outputs(rng):
    """The copy computes what the float32 network does, quantizers included (larq's are
    layers with a policy of their own), and converts with every binary conv lowered."""
    from bnn_keras.export import convert, op_counts
    from tests.tiny_models import NAME

    with precision_policy("mixed_bfloat16"):
        net = models.create(NAME, "bf", 4, (16, 16, 3))
    reference = models.create(NAME, "bf", 4, (16, 16, 3))
    reference.set_weights(net.get_weights())
    copy = float32_model(net)
    assert not is_mixed(copy) and copy.output.dtype == tf.float32
    quantizers = [layer.input_quantizer for layer in copy.layers
                  if getattr(layer, "input_quantizer", None) is not None]
    assert quantizers and all(q.dtype_policy.name == "float32" for q in quantizers)
    for a, b in zip(net.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = rng.normal(size=(3, 16, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(copy(x).numpy(), reference(x).numpy())
    assert float32_model(copy) is copy
    binary_convs = sum(isinstance(layer, ScaledStdQuantConv2D)
                       and layer.input_quantizer is not None for layer in net.layers)
    ops = op_counts(convert(net))  # the mixed network itself: converted as its copy
    assert binary_convs == 2 and ops["LceBconv2d"] == binary_convs


@pytest.mark.isolated
def test_run_stores_its_precision_and_saves_float32(capsys, tmp_path):
    from tests.cli_helpers import train_tiny

    code, _, err = train_tiny(capsys, tmp_path, "--epochs", "1", "--name", "p",
                              "--precision", "mixed_bfloat16")
    assert code == 0, err
    run = tmp_path / "p"
    assert json.loads((run / "config.json").read_text())["precision"] == "mixed_bfloat16"
    assert json.loads((run / "metrics.json").read_text())["precision"] == "mixed_bfloat16"
    saved = keras.models.load_model(run / "model.keras")
    assert not is_mixed(saved)


def test_auto_is_stored_resolved(capsys, tmp_path, monkeypatch):
    from bnn_keras.training import precision as mod
    from tests.cli_helpers import train_tiny

    monkeypatch.setattr(mod, "cpu_has_bf16", lambda: False)
    code, _, err = train_tiny(capsys, tmp_path, "--epochs", "1", "--name", "a",
                              "--precision", "auto")
    assert code == 0, err
    assert json.loads((tmp_path / "a" / "config.json").read_text())["precision"] == "float32"


def test_bad_precision_is_one_line(capsys, tmp_path):
    from tests.cli_helpers import train_tiny

    code, _, err = train_tiny(capsys, tmp_path, "--precision", "fp8")
    assert code == 1 and "precision must be one of auto, float32" in err
    assert "got 'fp8'" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
