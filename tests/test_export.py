"""LCE export: beta folds away, the routes agree, the deployability check sees what fails
(damaged flatbuffers: tests/test_damaged_flatbuffer.py; the zoo's conversions:
tests/test_zoo.py)."""

import numpy as np
import pytest

from bnn_keras import export, models
from bnn_keras.errors import BnnError
from bnn_keras.keras_files import load_keras_model
from bnn_keras.layers import ScaledStdQuantConv2D


def test_fold_scales_keeps_signs_and_drops_the_multiply(rng, tmp_path):
    model = models.create("reactnet_18", "bf", 10, (32, 32, 3))
    # every block has beta < 1 but blocks 1-2 of stage 1 and block 2 of the other stages
    # (the official schedule reads the reset variance of 1 there)
    assert len(export.foldable_biases(model)) == 16 - 5
    for layer in export.foldable_biases(model):
        layer.bias.assign(rng.normal(0, 0.3, layer.bias.shape).astype(np.float32))
    folded = export.fold_scales(model)
    assert not export.foldable_biases(folded)
    # the WS binary convs (and binary-kernel shortcut convs) carry their deployed kernel as
    # exact signs and one magnitude per output channel, multiplied after the conv
    assert not [lay for lay in folded.layers if isinstance(lay, ScaledStdQuantConv2D)]
    assert len(export.binary_conv_layers(model)) == 16
    binary = [lay for lay in model.layers if isinstance(lay, ScaledStdQuantConv2D)]
    assert len(binary) == 16 + 3
    for lay in binary:
        conv = folded.get_layer(lay.name)
        assert isinstance(conv, export.SignKernelConv2D)
        assert set(np.unique(conv.kernel.numpy())) <= {-1.0, 1.0}
        signs, magnitude = lay.binary_kernel_factors()
        deployed = (signs * magnitude).numpy()
        np.testing.assert_array_equal(conv.kernel.numpy() * conv.channel_scale.numpy(),
                                      deployed)
    x = rng.standard_normal((4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)
    folded.save(tmp_path / "folded.keras")  # the folded layers serialise too
    loaded = load_keras_model(tmp_path / "folded.keras")
    np.testing.assert_array_equal(loaded(x).numpy(), folded(x).numpy())


def _two_binary_convs(pad_values: float, scale: float | None):
    """Two binary convs, each input multiplied by ``scale`` first (unless ``None``)."""
    import larq as lq
    import tf_keras as keras

    x = keras.Input((8, 8, 4))
    y = x if scale is None else keras.layers.Rescaling(scale)(x)
    for _ in range(2):
        y = lq.layers.QuantConv2D(4, 3, padding="same", pad_values=pad_values,
                                  input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                                  kernel_constraint="weight_clip")(y)
        y = keras.layers.ReLU()(y)
        y = y if scale is None else keras.layers.Rescaling(scale)(y)
    y = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(y))
    return keras.Model(x, y)


def test_unfolded_multiply_is_detected(rng):
    """The deployability check sees a float MUL in front of a binarizer (so it can fail),
    and LCE's zero-padding correction exactly where the model zero-pads."""
    x = rng.standard_normal((4, 8, 8, 4)).astype(np.float32)
    model = _two_binary_convs(1.0, 0.5)
    fb = export.convert(model)
    producers = export.input_producers(fb, "LceQuantize")
    assert any("MUL" in p for p in producers)
    result = export.check_deployable(model, fb, x)
    assert not result.finding("binarizer_inputs").ok and not result.ok
    assert result.problems == [result.finding("binarizer_inputs").detail]
    assert result.finding("lowering").ok and result.finding("padding").ok
    assert [o["pad_values"] for o in export.bconv_options(fb)] == [1, 1]

    model = _two_binary_convs(0.0, None)
    fb = export.convert(model)
    assert [o["pad_values"] for o in export.bconv_options(fb)] == [0, 0]
    result = export.check_deployable(model, fb, x)
    assert result.ok, result.findings
    assert result.finding("padding").detail.startswith("zero-padding correction on 2 ")


def test_not_a_flatbuffer(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"hello world, not a model")
    with pytest.raises(BnnError, match="not a TFLite model"):
        export.read_flatbuffer(bad)
    with pytest.raises(BnnError, match="not found"):
        export.read_flatbuffer(tmp_path / "missing.tflite")


def test_calibrate_batchnorm_sets_batch_statistics(rng):
    import tf_keras as keras

    x_in = keras.Input((4, 4, 3))
    h = keras.layers.Conv2D(5, 3, padding="same", name="conv")(x_in)
    y = keras.layers.BatchNormalization(momentum=0.99, name="bn")(h)
    model = keras.Model(x_in, keras.layers.BatchNormalization(name="bn2")(y * 3.0 + 1.0))
    x = rng.normal(2.0, 3.0, (16, 4, 4, 3)).astype(np.float32)
    assert export.calibrate_batchnorm(model, x) == 2
    conv_out = keras.Model(x_in, h)(x).numpy()
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), conv_out.mean(axis=(0, 1, 2)),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(),  # Keras keeps the unbiased one
                               conv_out.var(axis=(0, 1, 2), ddof=1),
                               rtol=1e-3)
    assert bn.momentum == 0.99  # restored
    # the second BN saw the first one's normalised output: mean 1, variance 9
    np.testing.assert_allclose(model.get_layer("bn2").moving_mean.numpy(), 1.0, atol=1e-3)
    np.testing.assert_allclose(model.get_layer("bn2").moving_variance.numpy(), 9.0, rtol=1e-2)
    out = model(x).numpy()  # inference now normalises: about zero mean, unit variance
    assert abs(out.mean()) < 1e-3 and abs(out.std() - 1.0) < 1e-2


def test_trace_signs_finds_where_the_runtimes_part(rng, monkeypatch):
    """Identical up to rounding binarizer by binarizer; a perturbed flatbuffer shows up at
    the first binarizer, with flips far from zero."""
    import tf_keras as keras

    from bnn_keras.export import sign_trace
    from bnn_keras.models.reactnet_resnet import ReActNetResNetOptions, build_reactnet_resnet

    model = build_reactnet_resnet((2, 1), ReActNetResNetOptions(widths=(8, 16)), variant="bn",
                                  num_classes=10, input_shape=(16, 16, 3), name="tiny")
    x = rng.standard_normal((3, 16, 16, 3)).astype(np.float32)
    export.calibrate_batchnorm(model, x)
    traces = sign_trace.trace_signs(model, x)
    assert len(traces) == len(sign_trace.binarizer_inputs(model)) >= 3
    for t in traces:
        assert t.flips == [0, 0, 0], t
        assert max(t.max_abs_diff) < 1e-4 * max(1.0, t.std), t

    real_convert = sign_trace.convert

    def convert_with_stem_negated(truncated):
        copy = keras.models.clone_model(truncated)
        copy.set_weights(truncated.get_weights())
        stem = next(lay for lay in copy.layers if isinstance(lay, keras.layers.Conv2D))
        stem.kernel.assign(-stem.kernel)
        return real_convert(copy)

    monkeypatch.setattr(sign_trace, "convert", convert_with_stem_negated)
    first = sign_trace.trace_signs(model, x, layers=[traces[0].layer])
    assert len(first) == 1 and min(first[0].flips) > 0.1 * first[0].size
    assert min(first[0].flip_max_abs) > 0.1 * first[0].std
    # bisection lands on the same binarizer and does not call these flips rounding
    found = sign_trace.first_flips(model, x, [0, 2])
    assert [d.layer for d in found] == [traces[0].layer] * 2
    assert not any(d.rounding for d in found)
    assert found[0].flips == first[0].flips[0]


@pytest.mark.parametrize("variant", ["bn", "bf"])
def test_trace_reads_the_binarizer_inputs_out_of_the_flatbuffer(variant, rng):
    """Given the model's own flatbuffer, one interpreter run reads every binarizer input
    (bf: after beta is folded, divided back); a flatbuffer whose stem is negated is
    found at the first binarizer; one of another net is refused (conversions instead)."""
    import tf_keras as keras

    from bnn_keras.export import sign_trace
    from bnn_keras.models.reactnet_resnet import ReActNetResNetOptions, build_reactnet_resnet

    def tiny(blocks, name):
        return build_reactnet_resnet(blocks, ReActNetResNetOptions(widths=(8, 16)),
                                     variant=variant, num_classes=10,
                                     input_shape=(16, 16, 3), name=name)

    model = tiny((2, 1), "tiny")
    assert not variant == "bf" or export.foldable_biases(model)  # the division is tested
    x = rng.standard_normal((3, 16, 16, 3)).astype(np.float32)
    export.calibrate_batchnorm(model, x)
    traces = sign_trace.trace_signs(model, x, flatbuffer=export.convert(model))
    assert [t.layer for t in traces] == [name for name, _ in sign_trace.binarizer_inputs(model)]
    for t in traces:
        assert t.flips == [0, 0, 0], t
        assert max(t.max_abs_diff) < 1e-4 * max(1.0, t.std), t

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    stem = next(lay for lay in copy.layers if isinstance(lay, keras.layers.Conv2D))
    stem.kernel.assign(-stem.kernel)
    negated = export.convert(copy)
    first = sign_trace.trace_signs(model, x, flatbuffer=negated)[0]
    assert min(first.flips) > 0.1 * first.size and min(first.flip_max_abs) > 0.1 * first.std
    found = sign_trace.first_flips(model, x, [0, 2], flatbuffer=negated)
    assert [d.layer for d in found] == [traces[0].layer] * 2
    assert not any(d.rounding for d in found)

    other = export.convert(tiny((1, 1), "other"))
    assert sign_trace._traces_from_taps(model, other, x, sign_trace.binarizer_inputs(model)) is None


def test_divergence_is_rounding_only_near_zero_after_agreement():
    from bnn_keras.export.sign_trace import Divergence

    near = dict(sample=0, layer="b2", flips=1, std=2.0, before_std=1.5, tolerance=1e-4)
    assert Divergence(flip_max_abs=5e-6, before_max_abs_diff=4e-5, **near).rounding
    assert not Divergence(flip_max_abs=0.3, before_max_abs_diff=4e-5, **near).rounding
    assert not Divergence(flip_max_abs=5e-6, before_max_abs_diff=0.5, **near).rounding
    assert not Divergence(flip_max_abs=5e-6, before_max_abs_diff=4e-5, max_abs_diff=0.5,
                          **near).rounding  # a value off, not only a sign
    assert not Divergence(**{**near, "flips": 0}, flip_max_abs=0.0, before_max_abs_diff=4e-5,
                          max_abs_diff=0.5).rounding
    assert not Divergence(**{**near, "layer": None, "flips": 0}, flip_max_abs=0.0,
                          before_max_abs_diff=0.0).rounding


def test_frozen_and_saved_model_routes_convert_alike(monkeypatch, rng):
    """Small models convert from a frozen GraphDef, large ones through a SavedModel: the
    same ops, bit for bit the same outputs, in a bf ReActNet (beta folded, WS kernels).
    The frozen route calls LCE's private converter entry point, pinned to one release:
    this fails when that release changes or its private names move."""
    import importlib

    from larq_compute_engine.mlir._tf_tfl_flatbuffer import (  # noqa: F401
        convert_graphdef_to_tflite_flatbuffer,
    )
    from larq_compute_engine.mlir.python.converter import (  # noqa: F401
        _contains_training_quant_op,
    )

    from bnn_keras.models.reactnet_resnet import ReActNetResNetOptions, build_reactnet_resnet

    convert_module = importlib.import_module("bnn_keras.export.convert")
    assert convert_module.frozen_route_available(), (
        "LCE is not the release the frozen route was written for: check its private "
        "convert_graphdef_to_tflite_flatbuffer and widen FROZEN_ROUTE_LCE, or drop the route")
    model = build_reactnet_resnet((2, 1), ReActNetResNetOptions(widths=(8, 16)), variant="bf",
                                  num_classes=10, input_shape=(16, 16, 3), name="tiny")
    assert export.foldable_biases(model)
    frozen = export.convert(model)
    monkeypatch.setattr(convert_module, "FROZEN_GRAPH_MAX_BYTES", 0)
    saved = export.convert(model)
    assert frozen != saved  # two routes were taken (tensor names differ)
    assert export.op_counts(frozen) == export.op_counts(saved)
    assert export.op_counts(frozen)["LceBconv2d"] == len(export.binary_conv_layers(model))
    x = rng.standard_normal((3, 16, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(export.predict_tflite(frozen, x),
                                  export.predict_tflite(saved, x))
