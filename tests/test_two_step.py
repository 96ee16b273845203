"""Two-step training: stage 1 really uses real weights; stage 2 starts from all of them."""

import json

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bnn_keras import export, models
from bnn_keras.errors import BnnError
from bnn_keras.training.run_folder import RunFolder, model_file
from bnn_keras.training.two_step import (
    binary_kernel_layers,
    init_from,
    resolve_source,
    set_real_weights,
    set_ste_clip,
)
from bnn_keras.variables import latent_variable

SHAPE = (16, 16, 3)


def _perturb(net, rng):
    """Give every weight a distinct random value, as a trained stage 1 would have."""
    for v in net.weights:
        target = latent_variable(v)
        target.assign(rng.normal(0, 0.1, target.shape).astype(np.float32) + 0.5)


def _kernel(layer):
    """The kernel the layer convolves with (quantized, as in its forward pass)."""
    with lq.context.quantized_scope(True):
        return tf.convert_to_tensor(layer.kernel).numpy()


def _values(net):
    return {v.name: latent_variable(v).numpy() for v in net.weights}


@pytest.mark.parametrize("variant", ["bf", "bn"])
def test_stage1_uses_real_weights(variant, rng):
    net = models.create(register_tiny(), variant, 3, SHAPE)
    layer = binary_kernel_layers(net)[0]
    binary = _kernel(layer)
    assert len(np.unique(np.abs(binary[..., 0]).round(6))) == 1  # +-s per channel
    binary_layers = len(binary_kernel_layers(net))
    assert set_real_weights(net) == binary_layers > 0
    assert binary_kernel_layers(net) == []  # what a profile or an export sees too
    real = _kernel(layer)
    assert len(np.unique(np.abs(real[..., 0]).round(6))) > 10
    np.testing.assert_array_equal(np.sign(real), np.sign(binary))
    x = rng.normal(size=(2, *SHAPE)).astype(np.float32)
    assert np.all(np.isfinite(net(x, training=True).numpy()))


@pytest.mark.parametrize("variant", ["bf", "bn"])
def test_stage1_model_file_reloads_as_the_stage1_network(variant, rng, tmp_path):
    """The saved stage-1 network computes what it computed in training (real kernels),
    not the binary network of the same weights."""
    net = models.create(register_tiny(), variant, 3, SHAPE)
    set_real_weights(net)
    _perturb(net, rng)
    x = rng.normal(size=(4, *SHAPE)).astype(np.float32)
    expected = net(x, training=False).numpy()
    net.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert binary_kernel_layers(loaded) == []
    np.testing.assert_allclose(loaded(x, training=False).numpy(), expected, rtol=1e-5,
                               atol=1e-5)
    stage2 = models.create(register_tiny(), variant, 3, SHAPE)
    init_from(stage2, loaded)
    assert not np.allclose(stage2(x, training=False).numpy(), expected, atol=1e-3)


@pytest.mark.parametrize("name,variant", [("reactnet_18", "bf"), ("tiny", "bn")])
def test_stage2_starts_from_every_stage1_weight(name, variant, tmp_path, rng):
    name = register_tiny() if name == "tiny" else name
    stage1 = models.create(name, variant, 3, SHAPE)
    set_real_weights(stage1)
    _perturb(stage1, rng)
    stage1.save(tmp_path / "model.keras")
    expected = _values(stage1)

    stage2 = models.create(name, variant, 3, SHAPE)
    fresh = _values(stage2)
    report = init_from(stage2, tmp_path)  # the run folder
    assert not report.missing and not report.mismatched and not report.unused
    assert len(report.loaded) == len(stage2.weights)
    got = _values(stage2)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
        assert not np.array_equal(fresh[name], value)
    # and the stage-2 network binarises them
    layer = binary_kernel_layers(stage2)[0]
    k = _kernel(layer)
    assert len(np.unique(np.abs(k[..., 0]).round(6))) == 1


def test_init_fails_on_uninitialised_weights_unless_skipped(tmp_path, rng):
    stage1 = models.create(register_tiny(), "bf", 3, SHAPE)
    _perturb(stage1, rng)
    other = models.create(register_tiny(), "bf", 5, SHAPE)  # classifier shape differs
    with pytest.raises(BnnError, match="classifier/kernel"):
        init_from(other, stage1)
    report = init_from(other, stage1, skip=["classifier"])
    assert sorted(report.skipped)[0].startswith("classifier/bias")
    assert len(report.loaded) == len(other.weights) - 2
    src = _values(stage1)
    for name, value in _values(other).items():
        if not name.startswith("classifier"):
            np.testing.assert_array_equal(value, src[name])
    bn_net = models.create(register_tiny(), "bn", 3, SHAPE)
    with pytest.raises(BnnError, match="left uninitialised"):  # bf has no BN weights
        init_from(bn_net, stage1)


def test_run_folder_names_its_model(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert model_file(run) == RunFolder(run).model == run / "model.keras"
    assert model_file(tmp_path / "net.keras") == tmp_path / "net.keras"
    with pytest.raises(BnnError, match="no model.keras in that folder"):
        resolve_source(run)
    (run / "model.keras").write_bytes(b"")
    assert resolve_source(run) == run / "model.keras"


def test_latent_variable_unwraps_quantized_kernels():
    net = models.create(register_tiny(), "bf", 3, SHAPE)
    layer = binary_kernel_layers(net)[0]
    assert latent_variable(layer.kernel) is layer.kernel.latent_variable
    dense = net.get_layer("classifier").kernel
    assert latent_variable(dense) is dense


def test_ste_clip_swaps_activation_binariser():
    net = models.create(register_tiny(), "bf", 3, SHAPE)
    n = set_ste_clip(net, 1.3)
    assert n == len(export.binary_conv_layers(net))  # the convs with binary inputs
    assert export.binary_conv_layers(net)[0].input_quantizer.clip_value == 1.3


def register_tiny() -> str:
    """A two-block ReActNet (same layer types as reactnet_18) to keep end-to-end tests fast."""
    from tests.tiny_models import NAME

    return NAME


def test_two_step_recipe_end_to_end(tmp_path, capsys):
    from bnn_keras.cli import main

    common = ["train", "--recipe", "zoo/recipes/digits/reactnet_18_two_step.json",
              "--model", register_tiny(), "--image-size", "8",
              "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8",
              "--output", str(tmp_path), "--no-export", "--quiet"]
    main_ok(main, [*common, "--stage", "1"])
    run1 = tmp_path / "tiny_reactnet-bf-digits-stage1"
    config1 = json.loads((run1 / "config.json").read_text())
    assert config1["stage"] == 1 and config1["kernel_weight_decay"] == 1e-5
    main_ok(main, [*common, "--stage", "2", "--init-from", str(run1)])
    run2 = tmp_path / "tiny_reactnet-bf-digits-stage2"
    report = json.loads((run2 / "init_report.json").read_text())
    assert report["counts"]["missing"] == 0 and report["counts"]["mismatched"] == 0
    assert report["counts"]["loaded"] > 10
    assert json.loads((run2 / "config.json").read_text())["kernel_weight_decay"] == 0.0


def main_ok(main, args):
    try:
        main(args)
    except SystemExit as exc:
        assert exc.code in (0, None)
