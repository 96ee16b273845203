"""int8 where it is not binary: the quantization-aware copy of each family trains, saves,
converts to an int8 + 1-bit flatbuffer (every binary conv an ``LceBconv2d``, no float32
conv or dense, no DEQUANTIZE -> float -> QUANTIZE), and bad requests fail in one line."""

import subprocess
import sys

import larq as lq
import numpy as np
import pytest
import tf_keras as keras

from bnn_keras import export, models
from bnn_keras.export.int8 import io_types, sandwiched_ops
from bnn_keras.layers import RPReLU
from bnn_keras.quantize import (
    QuantizeError,
    calibrate_ranges,
    is_quantized,
    quantize_model,
    unset_ranges,
)
from bnn_keras.quantize.ranges import snap_range

#: The smallest model of each builder module (as tests/test_zoo.py picks them), every
#: variant; one QAT step at 32x32, then the int8 conversion.
SMALLEST = [("reactnet_18", "bf"), ("reactnet_18", "bn"), ("reactnet_18", "none"),
            ("reactnet_a", "bf"), ("reactnet_a", "bn"), ("reactnet_a", "none"),
            ("birealnet_18", "bn"), ("birealnet_18", "bf"), ("bnext_tiny", "bn"),
            ("bnext_tiny", "bf"), ("lqz_birealnet", "bn")]
INT8_CHECKS = ("lowering", "float_convs", "float_dense", "binarizer_inputs", "padding",
               "int8_kernels", "int8_sandwiches", "int8_macs")


def _float_net() -> keras.Model:
    """A float conv, RPReLU, add, pool and classifier: nothing binary, nothing chaotic."""
    x0 = keras.Input((12, 12, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(x0)
    x = RPReLU(name="act")(x)
    x = keras.layers.Add(name="add")([x, x])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    net = keras.Model(x0, keras.layers.Dense(5, name="classifier")(x))
    rng = np.random.default_rng(1)
    for w in net.weights:
        w.assign(rng.normal(0.0, 0.3, w.shape))
    return net


def test_int8_flatbuffer_matches_the_qat_model_to_a_step(rng):
    """Keras's fake quantization is what TFLite's int8 kernels compute, up to one or two
    rounding steps of the output."""
    qat = quantize_model(_float_net())
    x = rng.standard_normal((16, 12, 12, 3)).astype(np.float32)
    assert len(unset_ranges(qat)) > 0
    qat(x, training=True)
    assert unset_ranges(qat) == []
    flatbuffer = export.convert(qat)
    assert not {"CONV_2D", "FULLY_CONNECTED"} & set(_float_ops(flatbuffer))
    expected = qat.predict(x, verbose=0)
    step = (float(qat.get_layer("classifier_int8").output_max.numpy())
            - float(qat.get_layer("classifier_int8").output_min.numpy())) / 255
    got = export.predict_tflite(flatbuffer, x).reshape(expected.shape)
    assert np.max(np.abs(got - expected)) <= 2.5 * step


def _float_ops(flatbuffer: bytes) -> list[str]:
    from bnn_keras.export.int8 import int8_mac_figures

    return int8_mac_figures(flatbuffer)["float_mac_ops"]


def test_ranges_snap_to_exact_scales():
    low, high = (float(v) for v in snap_range(-0.3711, 2.0417))
    scale = (high - low) / 255
    assert low <= 0 <= high and abs(low + 0.3711) < 0.01 and abs(high - 2.0417) < 0.01
    assert np.float32(scale) == scale  # the same in single and double precision
    assert (-low / scale) == round(-low / scale)  # the zero point is exact


def test_calibration_sets_every_range_and_quantizes_nothing_while_measuring(rng):
    net = _float_net()
    qat = quantize_model(net)
    x = rng.standard_normal((8, 12, 12, 3)).astype(np.float32)
    assert calibrate_ranges(qat, [x[:4], x[4:]]) == 2
    assert unset_ranges(qat) == []
    layer = qat.get_layer("image_int8")
    low, high = float(layer.output_min.numpy()), float(layer.output_max.numpy())
    mean_low = np.mean([min(x[:4].min(), 0), min(x[4:].min(), 0)])
    assert low == pytest.approx(mean_low, rel=0.01) and high > 0
    assert qat.predict(x, verbose=0) == pytest.approx(net.predict(x, verbose=0), abs=0.1)


def test_qat_model_saves_and_loads_with_plain_keras(tmp_path, rng):
    qat = quantize_model(_float_net())
    x = rng.standard_normal((4, 12, 12, 3)).astype(np.float32)
    qat(x, training=True)
    path = tmp_path / "qat.keras"
    qat.save(path)
    np.save(tmp_path / "x.npy", x)
    code = ("import bnn_keras, numpy as np, tensorflow as tf\n"
            f"m = tf.keras.models.load_model({str(path)!r})\n"
            f"print(type(m.get_layer('act')).__name__, m.predict(np.load("
            f"{str(tmp_path / 'x.npy')!r}), verbose=0).sum())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "QatRPReLU"
    assert float(out[1]) == pytest.approx(float(qat.predict(x, verbose=0).sum()), rel=1e-4)


def test_nothing_to_quantize_is_one_error():
    x0 = keras.Input((8, 8, 3))
    y = lq.layers.QuantConv2D(4, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                              kernel_constraint="weight_clip")(x0)
    with pytest.raises(QuantizeError, match="no float conv or Dense layer: nothing"):
        quantize_model(keras.Model(x0, keras.layers.GlobalAveragePooling2D()(y)))
    with pytest.raises(QuantizeError, match="already quantization-aware"):
        quantize_model(quantize_model(_float_net()))


def test_export_refuses_ranges_never_set():
    with pytest.raises(QuantizeError, match="range.* never set"):
        export.convert(quantize_model(_float_net()))


def test_sandwiches_are_found():
    """A float op between DEQUANTIZE and QUANTIZE (a range missing inside): found."""
    qat = quantize_model(_float_net())
    qat(np.ones((2, 12, 12, 3), np.float32), training=True)
    inner = keras.Model(qat.input, qat.get_layer("add").output)  # no range after the add
    clean = export.convert(qat)
    assert sandwiched_ops(clean) == []
    y = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D()(inner.output))
    from bnn_keras.quantize import FakeQuant

    dirty = keras.Model(qat.input, FakeQuant(name="out_int8")(y))
    dirty(np.ones((2, 12, 12, 3), np.float32), training=True)
    found = sandwiched_ops(export.convert(dirty))
    assert found and all(not name.startswith(("QUANTIZE", "DEQUANTIZE")) for name in found)


@pytest.mark.isolated
@pytest.mark.parametrize("name, variant", [
    pytest.param(n, v, id=f"{n}-{v}",
                 marks=[] if (n, v) == ("reactnet_18", "bf") else [pytest.mark.slow])
    for n, v in SMALLEST])
def test_every_family_trains_and_converts_to_int8(name, variant):
    """One QAT step at 32x32, then the int8 + 1-bit flatbuffer: every binary conv an
    ``LceBconv2d`` reading and writing int8, and every int8 check passing."""
    net = models.create(name, variant, 10, (32, 32, 3))
    qat = quantize_model(net)
    assert is_quantized(qat) and qat.count_params() > net.count_params()
    x = np.random.default_rng(0).standard_normal((6, 32, 32, 3)).astype(np.float32)
    qat.compile(optimizer=keras.optimizers.Adam(1e-4), run_eagerly=True,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = qat.fit(x, np.arange(6) % 10, batch_size=6, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    flatbuffer = export.convert(qat)
    result = export.check_deployable(qat, flatbuffer, x[:2], min_agreement=0.0)
    for check in INT8_CHECKS:
        assert result.finding(check).ok, result.finding(check)
    assert "100.0%" in result.finding("int8_macs").detail
    assert export.op_counts(flatbuffer)["LceBconv2d"] == len(export.binary_conv_layers(net))
    assert io_types(flatbuffer) == ("float32", "float32")
