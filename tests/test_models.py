"""The registry and reactnet_18 in its three variants."""

import numpy as np
import pytest

from bnn_keras import models
from bnn_keras.errors import BnnError
from bnn_keras.layers import ScaledStdConv2D, ScaledStdQuantConv2D
from tests.helpers import stream_stds

pytestmark = pytest.mark.isolated  # ImageNet-sized nets built


def test_registry_lists_and_rejects():
    assert "reactnet_18" in models.names()
    with pytest.raises(BnnError, match="unknown model 'nope'.*reactnet_18"):
        models.create("nope")
    with pytest.raises(BnnError, match="no variant 'xx'"):
        models.create("reactnet_18", "xx")
    with pytest.raises(BnnError, match="input_shape"):
        models.create("reactnet_18", "bf", 10, (32, 32))
    with pytest.raises(BnnError, match="num_classes"):
        models.create("reactnet_18", "bf", 1, (32, 32, 3))



@pytest.mark.parametrize("name,variant,options,needle", [
    ("reactnet_18", "bf", {"depth": 3}, "bad option for model 'reactnet_18': unknown depth"),
    ("reactnet_18", "bf", {"rprelu": "sideways"}, "rprelu must be one of"),
    ("reactnet_18", "bn", {"pool_gain": True}, "options of the bf variant"),
    ("reactnet_18", "bf", {"source": "reactnet"}, "only the bn variant"),
    ("reactnet_18", "bf", {"alpha": "big"}, "alpha must be a float"),
    ("reactnet_a", "bf", {"width": 0}, "width must be > 0"),
    ("birealnet_18", "bf", {"stem": "tiny"}, "stem must be"),
    ("bnext_tiny", "bn", {"binary_pad": 2}, "binary_pad must be 0 or 1"),
    ("lqz_quicknet", "bn", {"binary_pad": 0.0}, "binary_pad must be None"),
])
def test_options_are_checked_without_building(name, variant, options, needle):
    """A family's options are one frozen dataclass, checked by name and value before any
    layer is built; create() takes them as keywords and refuses the same ones."""
    from dataclasses import replace

    def unbuildable(**kwargs):
        raise AssertionError("built")

    registry = models.registry._REGISTRY
    entry = registry[name]
    assert entry.options is not None
    registry[name] = replace(entry, builder=unbuildable)  # (isolated: no monkeypatch)
    try:
        with pytest.raises(BnnError, match=needle):
            models.check_options(name, variant, options)
        with pytest.raises(BnnError, match=needle):
            models.create(name, variant, 10, (32, 32, 3), **options)
    finally:
        registry[name] = entry


def test_options_object_reaches_the_builder():
    from bnn_keras.models.reactnet_resnet import ReActNetResNetOptions

    models.check_options("reactnet_18", "bf", {"rprelu": "branch", "binary_pad": 1})
    options = ReActNetResNetOptions(stem="small", pool_gain=True)
    with pytest.raises(AttributeError):
        options.stem = "imagenet"  # frozen
    model = models.get("reactnet_18").builder(variant="bf", num_classes=10,
                                              input_shape=(32, 32, 3), options=options)
    assert model.get_layer("stem_conv").kernel_size == (3, 3)  # the small stem


BINARY_3X3 = sum(9 * c_in * c for c_in, c in [(64, 64)] * 4 + [(64, 128)] + [(128, 128)] * 3
                 + [(128, 256)] + [(256, 256)] * 3 + [(256, 512)] + [(512, 512)] * 3)
#: BNN_NoBN's downsample 1x1 convs have binary kernels (on real-valued inputs)
BINARY_DOWNSAMPLE = 64 * 128 + 128 * 256 + 256 * 512


@pytest.mark.parametrize("variant", ["bn", "bf", "none"])
def test_reactnet_18_imagenet_counts(variant):
    """Bi-Real Net 18's figures (the papers): 1.676e9 binary MACs, 1.64e8 OPs (bn)."""
    s = models.model_stats(models.create("reactnet_18", variant, 1000, (224, 224, 3)))
    assert s.binary_macs == pytest.approx(1.676e9, rel=0.01)
    assert s.ops == pytest.approx(1.64e8, rel=0.02)
    assert s.binary_params == BINARY_3X3 + BINARY_DOWNSAMPLE
    if variant == "bn":
        s = models.model_stats(models.create("reactnet_18", "bn", 1000, (224, 224, 3),
                                             source="reactnet"))
        assert s.binary_params == BINARY_3X3  # ReActNet's own code: real downsample convs


def _layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


def test_variants_differ_only_where_they_should():
    bn = models.create("reactnet_18", "bn", 10, (32, 32, 3))
    none = models.create("reactnet_18", "none", 10, (32, 32, 3))
    bf = models.create("reactnet_18", "bf", 10, (32, 32, 3))
    bn_types = _layer_types(bn)
    assert bn_types.count("BatchNormalization") == 16 + 1 + 3  # convs, stem, shortcuts
    assert [t for t in bn_types if t != "BatchNormalization"] == _layer_types(none)
    assert "BatchNormalization" not in _layer_types(bf)
    # 16 binary convs and the three binary-kernel downsample convs; the stem is real
    assert sum(isinstance(lay, ScaledStdQuantConv2D) for lay in bf.layers) == 16 + 3
    assert sum(isinstance(lay, ScaledStdConv2D) for lay in bf.layers) == 1
    # the official heads are nn.Linear's default, U(+-1/sqrt(512)): std 1/sqrt(3 * 512) =
    # 0.0255 in every variant; init="keras" keeps the NF head N(0, 0.01) for bf and
    # Keras's Glorot (std sqrt(2 / (512 + 10)) = 0.062) for bn and none
    stds = {name: float(np.std(m.get_layer("classifier").kernel.numpy()))
            for name, m in [("bn", bn), ("none", none), ("bf", bf)]}
    assert stds == pytest.approx(dict.fromkeys(stds, 0.0255), rel=0.1)
    keras_stds = {v: float(np.std(models.create("reactnet_18", v, 10, (32, 32, 3), init="keras")
                                  .get_layer("classifier").kernel.numpy()))
                  for v in ("bn", "bf")}
    assert keras_stds == pytest.approx({"bn": 0.062, "bf": 0.01}, rel=0.1)


def test_stem_follows_input_size():
    small = models.create("reactnet_18", "bf", 10, (32, 32, 3))
    big = models.create("reactnet_18", "bf", 10, (128, 128, 3))
    assert small.get_layer("stem_conv").kernel_size == (3, 3)
    assert big.get_layer("stem_conv").kernel_size == (7, 7)
    assert "stem_pool" in [lay.name for lay in big.layers]
    forced = models.create("reactnet_18", "bf", 10, (128, 128, 3), stem="small")
    assert forced.get_layer("stem_conv").kernel_size == (3, 3)


def _stream_stds(model, block_output: str) -> list[float]:
    """The std of every block's output (the layers named ``*{block_output}``) on
    unit-variance inputs."""
    x = np.random.default_rng(0).standard_normal((32, 32, 32, 3)).astype(np.float32)
    return stream_stds(model, block_output, x)


def test_branch_rprelu_and_pool_gain_keep_unit_variance_at_init():
    """Our departure (``rprelu="branch"``, ``pool_gain=True``): at init, on unit-variance
    inputs, every block's output std is within 2x of 1."""
    model = models.create("reactnet_18", "bf", 10, (32, 32, 3), rprelu="branch",
                          pool_gain=True)
    stds = _stream_stds(model, "_add")
    assert len(stds) == 16 and all(0.5 <= s <= 2.0 for s in stds), stds


def test_official_bf_stream_shrinks_at_init():
    """The official BN-free net (RPReLU on the stream, shortcut gain beta) fails the same
    check: the stream's std falls well under 0.5 by the last stage (why the option above
    exists)."""
    stds = _stream_stds(models.create("reactnet_18", "bf", 10, (32, 32, 3)), "_rprelu")
    assert len(stds) == 16 and min(stds[-4:]) < 0.5, stds
