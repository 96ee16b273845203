"""The registry and reactnet_18 in its three variants."""

import numpy as np
import pytest
import tf_keras as keras

from bnn_keras import models
from bnn_keras.errors import BnnError
from bnn_keras.layers import ScaledStdConv2D, ScaledStdQuantConv2D


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


@pytest.mark.parametrize("variant", ["bn", "bf", "none"])
def test_reactnet_18_imagenet_counts(variant):
    """Bi-Real Net 18's figures (the papers): 1.676e9 binary MACs, 1.64e8 OPs (bn)."""
    s = models.model_stats(models.create("reactnet_18", variant, 1000, (224, 224, 3)))
    assert s.binary_macs == pytest.approx(1.676e9, rel=0.01)
    assert s.ops == pytest.approx(1.64e8, rel=0.02)
    assert s.binary_params == 16 * 0 + sum(
        9 * c_in * c for c_in, c in [(64, 64)] * 4 + [(64, 128)] + [(128, 128)] * 3
        + [(128, 256)] + [(256, 256)] * 3 + [(256, 512)] + [(512, 512)] * 3)


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
    assert sum(isinstance(lay, ScaledStdQuantConv2D) for lay in bf.layers) == 16
    assert sum(isinstance(lay, ScaledStdConv2D) for lay in bf.layers) == 1 + 3
    # the NF head: N(0, 0.01) for bf only; bn and none keep Keras's Glorot kernel
    # (std sqrt(2 / (512 + 10)) = 0.062)
    stds = {name: float(np.std(m.get_layer("classifier").kernel.numpy()))
            for name, m in [("bn", bn), ("none", none), ("bf", bf)]}
    assert stds["bf"] == pytest.approx(0.01, rel=0.1)
    assert stds["bn"] == pytest.approx(0.062, rel=0.1) and stds["none"] == pytest.approx(
        0.062, rel=0.1)


def test_stem_follows_input_size():
    small = models.create("reactnet_18", "bf", 10, (32, 32, 3))
    big = models.create("reactnet_18", "bf", 10, (128, 128, 3))
    assert small.get_layer("stem_conv").kernel_size == (3, 3)
    assert big.get_layer("stem_conv").kernel_size == (7, 7)
    assert "stem_pool" in [lay.name for lay in big.layers]
    forced = models.create("reactnet_18", "bf", 10, (128, 128, 3), stem="small")
    assert forced.get_layer("stem_conv").kernel_size == (3, 3)


def test_bf_residual_stream_keeps_unit_variance_at_init():
    """At init, on unit-variance inputs, every block's output std is within 2x of 1."""
    model = models.create("reactnet_18", "bf", 10, (32, 32, 3))
    adds = [lay.output for lay in model.layers if lay.name.endswith("_add")]
    assert len(adds) == 16
    x = np.random.default_rng(0).standard_normal((32, 32, 32, 3)).astype(np.float32)
    stds = [float(np.std(o)) for o in keras.Model(model.input, adds)(x)]
    assert all(0.5 <= s <= 2.0 for s in stds), stds


def test_none_variant_stream_is_not_controlled():
    """The failure baseline: without BN the same check fails (so the test above can)."""
    model = models.create("reactnet_18", "none", 10, (32, 32, 3))
    adds = [lay.output for lay in model.layers if lay.name.endswith("_add")]
    x = np.random.default_rng(0).standard_normal((8, 32, 32, 3)).astype(np.float32)
    stds = [float(np.std(o)) for o in keras.Model(model.input, adds)(x)]
    assert not all(0.5 <= s <= 2.0 for s in stds), stds
