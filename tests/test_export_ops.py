"""A lean export: RPReLU as a ``SUB`` and one ``PRELU``, its output shift in the layers
after it; few element-wise float ops per ``LceBconv2d``, the same outputs (see
bnn_keras/export/shifts.py).

Every net has its shifts moved off zero first (:func:`export.perturb_shifts`): the
converter drops an add of zeros, so an untrained net would look leaner than it deploys."""

import numpy as np
import pytest
import tf_keras as keras

from bnn_keras import export, models
from bnn_keras.layers import LearnableBias, RPReLU

pytestmark = pytest.mark.isolated  # full nets converted and interpreted

#: (model, variant, options): the most element-wise float ops per LceBconv2d.
CASES = [
    pytest.param("reactnet_18", "bf", {}, 4.0, id="reactnet_18-bf"),
    pytest.param("reactnet_18", "bn", {}, 4.0, id="reactnet_18-bn"),
    pytest.param("reactnet_18", "none", {}, 4.0, id="reactnet_18-none"),
    pytest.param("reactnet_18", "bf", {"rprelu": "branch"}, 4.0, id="reactnet_18-bf-branch"),
    pytest.param("birealnet_18", "bn", {}, 1.0, id="birealnet_18-bn"),
    pytest.param("birealnet_18", "bf", {}, 1.0, id="birealnet_18-bf"),
    # at 32x32 the last block's 3x3 conv is a whole-input conv, whose reshape keeps its
    # batch norm (bn) unfused; bf keeps the stride-2 shortcuts' beta multiplies
    pytest.param("reactnet_a", "bf", {}, 3.7, id="reactnet_a-bf", marks=pytest.mark.slow),
    pytest.param("reactnet_a", "bn", {}, 3.6, id="reactnet_a-bn", marks=pytest.mark.slow),
    pytest.param("reactnet_a", "none", {}, 3.6, id="reactnet_a-none", marks=pytest.mark.slow),
    # no RPReLU: the Info-Recoupling mixes, gates and BN2 stay float ops
    pytest.param("bnext_tiny", "bn", {}, 9.4, id="bnext_tiny-bn", marks=pytest.mark.slow),
    pytest.param("bnext_tiny", "bf", {}, 8.3, id="bnext_tiny-bf", marks=pytest.mark.slow),
]


def _trained_like(name: str, variant: str, rng, **options) -> tuple[keras.Model, np.ndarray]:
    model = models.create(name, variant, 10, (32, 32, 3), **options)
    assert export.perturb_shifts(model, rng) > 0
    x = rng.standard_normal((4, 32, 32, 3)).astype(np.float32)
    export.calibrate_batchnorm(model, x)
    return model, x


@pytest.mark.parametrize("name, variant, options, most", CASES)
def test_elementwise_ops_per_bconv_and_agreement(name, variant, options, most, rng):
    model, x = _trained_like(name, variant, rng, **options)
    flatbuffer = export.convert(model)
    counts = export.op_counts(flatbuffer)
    elementwise = export.elementwise_counts(flatbuffer)
    per_bconv = sum(elementwise.values()) / counts["LceBconv2d"]
    assert per_bconv <= most, dict(elementwise)
    prelus = sum(isinstance(lay, (RPReLU, keras.layers.PReLU)) for lay in model.layers)
    assert counts.get("PRELU", 0) == prelus
    # no unfused relu(x) - a relu(-x); each RPReLU keeps its input shift, a SUB unless
    # LCE fuses it into the binary conv right before (rprelu="branch")
    assert not {"NEG", "RELU"} & set(elementwise), dict(elementwise)
    assert elementwise["SUB"] <= sum(isinstance(lay, RPReLU) for lay in model.layers)
    result = export.check_deployable(model, flatbuffer, x, min_agreement=1.0)
    assert result.ok, (result.findings, result.divergences)


def test_folding_the_shifts_keeps_the_outputs_and_the_model(rng):
    model, x = _trained_like("reactnet_18", "bf", rng)
    before = [w.copy() for w in model.get_weights()]
    unfolded = export.fold_scales(model, fold_biases=False)
    folded = export.fold_scales(model)
    deployed = [lay for lay in folded.layers if isinstance(lay, export.DeployRPReLU)]
    assert len(deployed) == 16
    assert all(lay.shift_in and not lay.shift_out for lay in deployed)
    assert not [lay for lay in unfolded.layers if isinstance(lay, export.DeployRPReLU)]
    np.testing.assert_allclose(folded(x).numpy(), unfolded(x).numpy(), rtol=1e-4, atol=1e-4)
    # the trained model is left as it was: only the export copy changes
    for w, w0 in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, w0)


def test_a_shift_that_cannot_move_stays(rng):
    """An RPReLU whose output is also a model output keeps its output shift; its
    neighbours keep theirs."""
    inputs = keras.Input((6, 6, 4))
    h = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    r = RPReLU()(h)
    y = keras.layers.Conv2D(4, 1)(LearnableBias()(r))
    model = keras.Model(inputs, [r, y, keras.layers.ReLU()(h)])
    export.perturb_shifts(model, rng)
    plan = export.plan_shifts(model)
    assert plan.rprelus == {r._keras_history.layer.name: (True, True)} and not plan.edits
    folded = export.fold_scales(model)
    x = rng.standard_normal((2, 6, 6, 4)).astype(np.float32)
    for got, expected in zip(folded(x), model(x)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_shifts_move_through_pools_concatenations_and_dense(rng):
    """zeta crosses an average pool and a concatenation into a 1x1 conv's new bias, the
    next RPReLU's gamma and a Dense bias."""
    inputs = keras.Input((4, 4, 3))
    a = keras.layers.Conv2D(3, 3, padding="same", use_bias=False)(inputs)
    r = RPReLU()(a)
    pooled = keras.layers.AveragePooling2D(2)(r)
    side = keras.layers.Conv2D(5, 1, use_bias=False)(pooled)
    both = keras.layers.Concatenate()([pooled, side])
    r2 = RPReLU()(both)
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(r2))
    model = keras.Model(inputs, out)
    export.perturb_shifts(model, rng)
    plan = export.plan_shifts(model)
    assert list(plan.rprelus.values()) == [(True, False), (True, False)]
    assert plan.new_bias == {side._keras_history.layer.name}
    r2_name = r2._keras_history.layer.name
    assert (r2_name, "bias_in") in plan.edits and (a._keras_history.layer.name, "bias") \
        not in plan.edits
    folded = export.fold_scales(model)
    x = rng.standard_normal((3, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    config = folded.get_layer(side._keras_history.layer.name).get_config()
    assert config["use_bias"] and model.get_layer(side._keras_history.layer.name).use_bias is False
