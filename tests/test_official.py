"""Our networks compute what the official PyTorch code computes, tensor for tensor.

Each fixture in ``tests/data/official`` was made by ``tests/make_official_fixtures.py``
running one official network (its own constructor, seeded weights, BatchNorm statistics
measured on digits images); the test rebuilds the same state dict, imports it with
:func:`bnn_keras.models.import_torch` and requires the official logits: relative L2
error under 1e-3 (float rounding gives about 1e-6) and the same top-1, from Keras and
from the LCE flatbuffer. Neither torch nor the official code is needed.
"""

import numpy as np
import pytest

from bnn_keras import export, models
from bnn_keras.errors import BnnError
from bnn_keras.models.torch_import import ImportReport, import_state_dict, import_torch
from bnn_keras.models.torch_keys import source_for
from bnn_keras.official_fixtures import fixture_names, load_fixture

pytestmark = pytest.mark.isolated  # full nets imported, converted and interpreted

#: every family and source the official repositories hold
EXPECTED = {
    "bnn_nobn-reactnet_18-bn", "bnn_nobn-reactnet_18-bf", "bnn_nobn-reactnet_18-none",
    "bnn_nobn-reactnet_34-bf", "bnn_nobn-reactnet_a-bn", "bnn_nobn-reactnet_a-bf",
    "bnn_nobn-reactnet_a-none", "reactnet-reactnet_18-bn", "reactnet-reactnet_34-bn",
    "reactnet-reactnet_a-bn", "bireal-birealnet_18-bn", "bireal-birealnet_34-bn",
    "bnext-bnext_tiny-bn", "bnext-bnext_small-bn", "bnext-bnext_middle-bn",
    "bnext-bnext_large-bn",
}
#: 0.5 / 1.2 GB of weights: logits only, each in a fresh interpreter (test_zoo converts
#: them at full width with BNN_ZOO_LARGE=1)
LARGE = ("bnext-bnext_middle-bn", "bnext-bnext_large-bn")
TOLERANCE = 1e-3


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def _imported(name: str):
    fixture = load_fixture(name)
    meta = fixture.meta
    net, report = import_torch(fixture.state_dict(), meta["model"], meta["variant"],
                               num_classes=meta["num_classes"],
                               input_size=meta["input_size"], source=meta["source"])
    return fixture, net, report


def test_every_family_and_source_has_a_fixture():
    assert set(fixture_names()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED - set(LARGE)))
def test_official_network_in_keras_and_lce(name):
    fixture, net, report = _imported(name)
    assert report.tensors + len(report.ignored) == len(fixture.shapes)
    got = net.predict(fixture.inputs, verbose=0)
    assert _rel(got, fixture.logits) < TOLERANCE
    assert (got.argmax(-1) == fixture.logits.argmax(-1)).all()

    flatbuffer = export.convert(net)
    assert export.op_counts(flatbuffer)["LceBconv2d"] == len(export.binary_conv_layers(net))
    deployed = export.predict_tflite(flatbuffer, fixture.inputs).reshape(got.shape)
    assert _rel(deployed, fixture.logits) < TOLERANCE
    assert (deployed.argmax(-1) == fixture.logits.argmax(-1)).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE)
def test_official_large_network_in_keras(name):
    fixture, net, _ = _imported(name)
    got = net.predict(fixture.inputs, verbose=0)
    assert _rel(got, fixture.logits) < TOLERANCE
    assert (got.argmax(-1) == fixture.logits.argmax(-1)).all()


def _rebuilt(name: str, **options) -> float:
    """The fixture's relative logit error with the network built with ``options``."""
    fixture = load_fixture(name)
    meta = fixture.meta
    kwargs = {"source": meta["source"]} if meta["model"] in ("reactnet_18", "reactnet_34") else {}
    net = models.create(meta["model"], meta["variant"], meta["num_classes"],
                        (meta["input_size"],) * 2 + (3,), stem="imagenet", **kwargs, **options)
    report = ImportReport(meta["model"], meta["variant"], meta["source"], "", 0)
    import_state_dict(net, fixture.state_dict(), source_for(meta["model"], meta["source"]),
                      report)
    return _rel(net.predict(fixture.inputs, verbose=0), fixture.logits)


@pytest.mark.parametrize("name, options", [
    ("bnn_nobn-reactnet_18-bn", {"binary_pad": 1.0}),
    ("bnn_nobn-reactnet_18-bn", {"align": "tf"}),
    ("bnn_nobn-reactnet_18-bf", {"rprelu": "branch"}),
    ("bnn_nobn-reactnet_18-bf", {"pool_gain": True}),
    ("bnn_nobn-reactnet_a-bf", {"rprelu": "branch"}),
    ("bnext-bnext_tiny-bn", {"align": "tf"}),
])
def test_the_fixtures_see_each_departure(name, options):
    """Each named departure from the official code changes the logits well past the
    tolerance, so the fixture test above would catch it as a default."""
    assert _rebuilt(name) < TOLERANCE
    assert _rebuilt(name, **options) > 10 * TOLERANCE


def test_reactnet_18_sources_differ_in_the_downsample_conv():
    bnn_nobn = models.create("reactnet_18", "bn", 10, (64, 64, 3), source="bnn_nobn")
    reactnet = models.create("reactnet_18", "bn", 10, (64, 64, 3), source="reactnet")
    conv = [m.get_layer("stage2_block1_down_conv") for m in (bnn_nobn, reactnet)]
    assert conv[0].kernel_quantizer.precision == 1 and conv[0].input_quantizer is None
    assert not hasattr(conv[1], "kernel_quantizer")
    assert (models.model_stats(bnn_nobn).binary_params
            - models.model_stats(reactnet).binary_params) == 64 * 128 + 128 * 256 + 256 * 512
    with pytest.raises(BnnError, match="only the bn variant"):
        models.create("reactnet_18", "bf", 10, (64, 64, 3), source="reactnet")


def test_bf_betas_follow_the_official_schedules():
    from bnn_keras.models.reactnet_a import bf_betas as betas_a
    from bnn_keras.models.reactnet_resnet import bf_betas as betas_18

    v = 0.2**2
    # Qaw_reactnet_18_bf: a stage's first two blocks read the same variance
    assert betas_18((4, 4, 4, 4), 0.2)[0] == pytest.approx(
        [1, 1, (1 + v) ** -0.5, (1 + 2 * v) ** -0.5])
    assert betas_18((4, 4, 4, 4), 0.2)[1][0] == pytest.approx((1 + 3 * v) ** -0.5)
    # Qaw_reactnet_A_bf: block 3 (after the stride-2 block 2) starts again from 1
    a = betas_a(0.2)
    assert a[0] == pytest.approx((1, (1 + v) ** -0.5))
    assert a[1] == pytest.approx(((1 + 2 * v) ** -0.5, (1 + 3 * v) ** -0.5))
    assert a[2] == pytest.approx((1, (1 + v) ** -0.5))
