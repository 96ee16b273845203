"""The model zoo: the papers' counts, training steps, ``.keras`` round trips and LCE export.

One test over the registry (every built-in model in every variant) checks the papers'
counts and the deployability of LCE's conversion (:func:`bnn_keras.export.check_deployable`,
every differing top-1 traced to rounding). What else a case runs follows from two rules:

- the smallest model (fewest 1-bit weights) of each builder module, in every variant,
  first takes two training steps and a ``.keras`` round trip, and the reloaded model is
  converted (the larger models of a module are the same layers at other depths or
  widths); the others are converted untrained, their BN statistics calibrated;
- a model whose weights (its 1-bit weights, trained as float32 latent weights:
  ``4 * BINARY_PARAMS`` bytes) exceed :data:`HEAVY_BYTES` (bnext_middle, bnext_large) is
  marked ``slow`` and runs only with ``BNN_ZOO_LARGE=1``: CI cannot afford them. (Every
  case runs in a fresh interpreter, replaced as it grows: the ``isolated`` marker.)

``BNN_ZOO_ALL=1`` gives every case the training steps and the round trip (and runs the
heavy ones); never beside another memory-heavy job.
"""

import gc
import os

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bnn_keras import export, models
from bnn_keras.keras_files import load_keras_model
from bnn_keras.layers import ChannelGate, RecouplingMix, Rotate180
from bnn_keras.quantizers import has_binary_kernel
from tests.helpers import stream_stds

pytestmark = pytest.mark.isolated  # every family built, trained, converted

#: The papers' figures: 1-bit weights, exactly (larq-zoo's from its own architecture;
#: reactnet_18 / 34 with BNN_NoBN's three binary-kernel downsample convs) ...
BINARY_PARAMS = {
    "reactnet_18": 11_157_504, "reactnet_34": 21_258_240,
    "reactnet_a": 28_253_184, "bnext_tiny": 28_253_184, "bnext_small": 63_569_664,
    "bnext_middle": 126_238_464, "bnext_large": 308_310_016,
    "birealnet_18": 10_985_472, "birealnet_34": 21_086_208, "lqz_birealnet": 10_985_472,
    "lqz_quicknet_small": 11_980_800, "lqz_quicknet": 12_533_760,
    "lqz_quicknet_large": 22_634_496,
}
#: ... and the binary convs each model must lower to LceBconv2d.
BINARY_CONVS = {"reactnet_18": 16, "reactnet_34": 32, "reactnet_a": 31, "bnext_tiny": 31,
                "birealnet_18": 16, "birealnet_34": 32,
                "lqz_birealnet": 16, "lqz_quicknet_small": 16, "lqz_quicknet": 16,
                "lqz_quicknet_large": 32, "bnext_small": 31, "bnext_middle": 47,
                "bnext_large": 63}

#: Weights over this many bytes: a heavy case (``slow``, BNN_ZOO_LARGE).
HEAVY_BYTES = 256 * 2**20

SMALL = (32, 32, 3)
ALL = bool(os.environ.get("BNN_ZOO_ALL"))
LARGE = ALL or bool(os.environ.get("BNN_ZOO_LARGE"))


def _built_in() -> list[str]:
    """The registry's own models (not those a test or a plugin module registers)."""
    return [n for n in models.names()
            if models.get(n).builder.__module__.startswith("bnn_keras.")]


def _weight_bytes(name: str) -> int:
    return 4 * BINARY_PARAMS[name]


def _trains(name: str) -> bool:
    """Whether ``name`` is the smallest built-in model of its builder module."""
    module = models.get(name).builder.__module__
    same = [n for n in _built_in() if models.get(n).builder.__module__ == module]
    return ALL or name == min(same, key=BINARY_PARAMS.__getitem__)


def _case(name: str, variant: str):
    marks = []
    if _weight_bytes(name) > HEAVY_BYTES:
        marks = [pytest.mark.slow, pytest.mark.xdist_group("full_width"),
                 pytest.mark.skipif(not LARGE, reason="full width: BNN_ZOO_LARGE=1")]
    return pytest.param(name, variant, id=f"{name}-{variant}", marks=marks)


CASES = [_case(n, v) for n in _built_in() for v in models.get(n).variants]


def test_zoo_is_registered():
    names = _built_in()
    assert set(names) == set(BINARY_PARAMS) == set(BINARY_CONVS)  # every model has figures
    assert names.index("reactnet_18") < names.index("reactnet_a")  # reactnet first
    assert models.get("reactnet_a").variants == ("bf", "bn", "none")
    for name in ("birealnet_18", "birealnet_34", "bnext_tiny", "bnext_large"):
        assert models.get(name).variants == ("bn", "bf")
    assert all(models.get(n).variants == ("bn",) for n in names if n.startswith("lqz_"))


@pytest.mark.parametrize("name, binary_macs, ops, rel", [
    ("reactnet_a", None, 0.87e8, 0.02),
    ("birealnet_18", 1.676e9, 1.64e8, 0.01),
    ("birealnet_34", None, 1.93e8, 0.01),
    ("bnext_tiny", None, None, None),
    ("bnext_small", None, None, None),
    ("bnext_middle", None, None, None),
    ("bnext_large", None, None, None),
])
def test_imagenet_counts(name, binary_macs, ops, rel):
    """The papers' figures at 224x224x3 and 1000 classes (bn variant; built, not run)."""
    model = models.create(name, "bn", 1000, (224, 224, 3))
    s = models.model_stats(model)
    assert s.binary_params == BINARY_PARAMS[name]
    if binary_macs:
        assert s.binary_macs == pytest.approx(binary_macs, rel=rel)
    if ops:
        assert s.ops == pytest.approx(ops, rel=rel)
    assert model.output_shape == (None, 1000)
    assert model.get_layer("classifier").units == 1000


@pytest.mark.parametrize("name, variant", CASES)
def test_zoo_model(name, variant, tmp_path):
    """The papers' counts, and LCE's conversion deployable as a BNN; training steps and a
    ``.keras`` round trip first for the smallest model of a module (see the docstring)."""
    model = models.create(name, variant, 10, SMALL)
    assert model.output_shape == (None, 10)
    assert model.layers[-1].name == "classifier"
    stats = models.model_stats(model)
    assert stats.binary_params == BINARY_PARAMS[name]  # independent of input and classes
    assert len(export.binary_conv_layers(model)) == BINARY_CONVS[name]
    assert not [lay for lay in model.layers if isinstance(lay, lq.layers.QuantDense)
                and has_binary_kernel(lay)]
    x = np.random.default_rng(0).standard_normal((6, *SMALL)).astype(np.float32)
    if _trains(name):
        model = _train_and_round_trip(model, name, variant, x, str(tmp_path / "m.keras"))
    else:
        export.calibrate_batchnorm(model, x[:4])
    _assert_deployable(model, x[:4])


def _train_and_round_trip(model, name: str, variant: str, x: np.ndarray, path: str):
    """Two training steps, then the model saved and reloaded; the reloaded model."""
    # our BN-free nets start with a unit-variance residual stream; the official BN-free
    # ReActNets do not (tests/test_models.py checks both)
    if variant == "bf" and models.get(name).family != "reactnet":
        stds = stream_stds(model, ("_add", "_add1", "_add2"), x)
        assert stds and all(0.5 <= s <= 2.0 for s in stds), stds
    # batches of 6: at 32x32 the last stages are 1x1, and BN's batch variance over 2
    # values blows the gradients of larq-zoo's QuickNets up to inf. Eager: tracing a
    # 300-layer graph costs more than two steps; the heavy nets run as a graph, as eager
    # keeps every intermediate until the step ends
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  run_eagerly=_weight_bytes(name) <= HEAVY_BYTES,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, np.arange(6) % 10, batch_size=6, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(np.isfinite(w).all() for w in model.get_weights())
    model.save(path)
    expected = model(x[:2]).numpy()
    # what goes on is the reloaded model, without the trained one and its optimizer slots
    del model, history
    keras.backend.clear_session()
    gc.collect()
    model = load_keras_model(path)
    np.testing.assert_allclose(model(x[:2]).numpy(), expected, rtol=1e-4, atol=1e-4)
    return model


def _assert_deployable(model, x):
    """Every finding of the deployability check passes, every differing top-1 traced to
    rounding; the PyTorch-aligned input rotation is one ``REVERSE_V2`` per rotation."""
    flatbuffer = export.convert(model)
    result = export.check_deployable(model, flatbuffer, x, min_agreement=1.0)
    assert result.ok, (result.findings, result.divergences)
    rotations = sum(isinstance(lay, Rotate180) for lay in model.layers)
    assert export.op_counts(flatbuffer).get("REVERSE_V2", 0) == rotations


def test_recoupling_mix_is_clamped_and_serialises(tmp_path, rng):
    u = keras.Input((4, 4, 3))
    x = keras.Input((4, 4, 3))
    mix = RecouplingMix(input_scale=0.5, initial_mix=0.25, name="mix")([u, x])
    gate = keras.layers.Dense(3, activation="sigmoid")(
        keras.layers.GlobalAveragePooling2D(keepdims=True)(mix))
    y = ChannelGate(scale=0.2, name="gate")([x, gate])
    model = keras.Model([u, x], y)
    a, b = (rng.standard_normal((2, 4, 4, 3)).astype(np.float32) for _ in range(2))
    s = model.get_layer("mix").mix
    np.testing.assert_allclose(s.numpy(), 0.25)
    expected = 0.25 * 0.5 * a + 0.75 * b
    np.testing.assert_allclose(keras.Model([u, x], mix)([a, b]).numpy(), expected, rtol=1e-5,
                               atol=1e-6)
    s.assign([1.5, -0.5, 0.5])
    opt = keras.optimizers.SGD(0.0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model([a, b]))
    opt.apply_gradients(zip(tape.gradient(loss, [s]), [s]))
    np.testing.assert_allclose(s.numpy(), [1.0, 0.0, 0.5])  # the constraint clamps to [0, 1]

    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_keras_model(path)
    np.testing.assert_allclose(loaded([a, b]).numpy(), model([a, b]).numpy(), rtol=1e-5,
                               atol=1e-6)
    for layer_name in ("mix", "gate"):
        assert loaded.get_layer(layer_name).get_config() == model.get_layer(
            layer_name).get_config()


def test_bnext_elm_attention_placement():
    """ELM-Attention on the even blocks and on every stride-2 block; two concatenated 1x1
    modules exactly where the width doubles."""
    model = models.create("bnext_tiny", "bn", 10, SMALL)
    names = {lay.name for lay in model.layers}
    elm = [i for i in range(1, 14) if f"block{i}_3x3_attend" in names]
    assert elm == [2, 4, 6, 8, 10, 12]
    doubled = [i for i in range(1, 14) if f"block{i}_concat" in names]
    assert doubled == [1, 2, 4, 6, 12]
    strided = [i for i in range(1, 14) if f"block{i}_3x3_pool" in names]
    assert strided == [2, 4, 6, 12]
    assert model.get_layer("block1_3x3_se_reduce").units == 32 // 8
