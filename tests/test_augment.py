"""RandAugment against timm's: the configuration BNext trains with, every op's argument at a
level (the magnitude schedule), and every op's pixels, from ``tests/data/randaugment.npz``
(made by ``tests/make_augment_fixtures.py`` with timm 0.6.11 and Pillow; no torch or timm
here).

Tolerance: none. Our ops reproduce PIL's arithmetic (float32 blends, float64 affine
coordinates, bicubic with a = -1 and the edges repeated, truncation to uint8, the fill
colour outside), so every output level must equal timm's, in eager mode and in a graph.
"""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from bnn_keras.data import augment as aug
from bnn_keras.data import pil_ops
from bnn_keras.data import randaugment as ra


@pytest.fixture(scope="module")
def timm():
    with np.load(Path(__file__).parent / "data" / "randaugment.npz") as arrays:
        return dict(arrays)


def _cases(timm):
    for i, name in enumerate(timm["case_name"]):
        negate = int(timm["case_negate"][i])
        yield (i, str(name), float(timm["case_level"][i]), None if negate < 0 else bool(negate),
               str(timm["case_interpolation"][i]))


def test_defaults_are_bnexts_timm_configuration(timm):
    assert list(ra.RAND_AUGMENT_OPS) == list(timm["config_ops"])
    assert bool(timm["config_uniform_choice"])  # no choice weights: uniform, with replacement
    defaults = ra.rand_augment.__defaults__  # num_layers, magnitude, std, prob, ops, fill, interp
    assert defaults[:4] == (int(timm["config_layers"]), 7.0, 0.5, 0.5)
    assert set(timm["config_magnitude"]) == {7} and set(timm["config_magnitude_std"]) == {0.5}
    assert set(timm["config_prob"]) == {0.5}
    assert defaults[5] == ra.BNEXT_FILL == tuple(int(v) for v in timm["config_fill"])
    assert defaults[6] == ra.DEFAULT_INTERPOLATION == str(timm["config_interpolation"])
    assert aug.rand_augment is ra.rand_augment and aug.RAND_AUGMENT_OPS is ra.RAND_AUGMENT_OPS


def test_magnitude_schedule_matches_timm(timm):
    """Rotate 30 degrees, shear 0.3, translate 0.45 of the side, enhance 1 +- 0.9 (>= 0.1)
    at level 10; posterize 4 - int(0.4 level) bits, solarize 256 - int(25.6 level),
    solarize-add int(11 level)."""
    checked = 0
    for i, name, level, negate, _ in _cases(timm):
        arg = ra.level_to_arg(name, tf.constant(level), negate)
        if np.isnan(timm["case_arg"][i]):
            assert arg is None, name
            continue
        assert float(arg) == timm["case_arg"][i], (name, level, negate)
        checked += 1
    assert checked > 40
    at_10 = {n: float(ra.level_to_arg(n, 10.0, False)) for n in ("Rotate", "ShearX",
                                                               "TranslateXRel")}
    assert at_10 == {"Rotate": 30.0, "ShearX": 0.3, "TranslateXRel": 0.45}


def test_ops_match_timm_pixel_for_pixel(timm):
    fill = tuple(int(v) for v in timm["config_fill"])
    images = tf.constant(timm["images"], tf.float32)
    mismatches = []
    for i, name, level, negate, interpolation in _cases(timm):
        for j in range(len(timm["images"])):
            out = ra.apply_op(name, images[j], tf.constant(level), negate=negate, fill=fill,
                              interpolation=interpolation).numpy()
            assert out.dtype == np.float32 and out.shape == timm["images"][j].shape
            diff = np.abs(out - timm["outputs"][i, j])
            if diff.max() > 0:
                mismatches.append((name, level, negate, interpolation, j, diff.max(),
                                   float((diff > 0).mean())))
    assert not mismatches, mismatches


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_ops_match_timm_inside_tf_data(timm, interpolation):
    """The same in a tf.data map, whose graph optimisations (constant folding) must not
    regroup the float operations."""
    fill = tuple(int(v) for v in timm["config_fill"])
    names = list(ra.RAND_AUGMENT_OPS)
    cases = [c for c in _cases(timm) if c[4] == interpolation]
    n = len(timm["images"])
    index = [names.index(c[1]) for c in cases for _ in range(n)]
    level = [c[2] for c in cases for _ in range(n)]
    negate = [bool(c[3]) for c in cases for _ in range(n)]
    image = np.concatenate([timm["images"]] * len(cases)).astype(np.float32)

    def apply(x, k, lv, ng):
        branches = [lambda nm=nm: ra.apply_op(nm, x, lv, negate=ng, fill=fill,
                                              interpolation=interpolation) for nm in names]
        return tf.switch_case(k, branches)

    ds = tf.data.Dataset.from_tensor_slices((image, index, np.float32(level), negate))
    out = np.stack(list(ds.map(apply).as_numpy_iterator()))
    expect = np.concatenate([timm["outputs"][c[0]] for c in cases])
    bad = sorted({cases[k // n][:4] for k in np.flatnonzero((out != expect).any(axis=(1, 2, 3)))})
    assert not bad, bad


def test_posterize_at_level_10_is_black():
    """0 bits: Pillow 9.3 (BNext's pin) maps every level to 0; newer Pillow raises."""
    image = tf.constant(np.arange(256, dtype=np.float32).reshape(16, 16, 1) * np.ones(3))
    assert int(ra.level_to_arg("PosterizeIncreasing", 10.0)) == 0
    out = ra.RAND_AUGMENT_OPS["PosterizeIncreasing"](image, 10.0).numpy()
    np.testing.assert_array_equal(out, 0.0)
    np.testing.assert_array_equal(pil_ops.posterize(image, 8), image)


def test_rand_augment_composes_the_ops(timm):
    """One layer, probability 1, one op and no magnitude noise: the op itself, after the
    input is rounded to whole levels; two layers: the op twice."""
    image = timm["images"][1].astype(np.float32)
    noisy = tf.constant(image + np.float32(0.3))  # rounds back to `image`
    for i, name, level, negate, interpolation in _cases(timm):
        if negate is not None or interpolation != "bicubic":
            continue
        out = ra.rand_augment(noisy, num_layers=1, magnitude=level, magnitude_std=0.0, prob=1.0,
                              ops=[name]).numpy()
        np.testing.assert_array_equal(out, timm["outputs"][i, 1], err_msg=name)
        twice = ra.rand_augment(noisy, num_layers=2, magnitude=level, magnitude_std=0.0,
                                prob=1.0, ops=[name]).numpy()
        op = ra.RAND_AUGMENT_OPS[name]
        np.testing.assert_array_equal(twice, op(op(tf.constant(image), level), level).numpy())
    same = ra.rand_augment(noisy, num_layers=3, prob=0.0).numpy()
    np.testing.assert_array_equal(same, image)


def test_rand_augment_draws():
    """Over many images: an op is applied at about the rate 1 - (1 - p)^layers, and the
    result keeps shape and whole levels in [0, 255]."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (12, 16, 3)).astype(np.float32)
    ds = tf.data.Dataset.from_tensors(image).repeat(200).map(
        lambda x: ra.rand_augment(x, ops=["Invert"]))
    out = np.stack(list(ds.as_numpy_iterator()))
    assert out.shape == (200, 12, 16, 3) and out.min() >= 0 and out.max() <= 255
    np.testing.assert_array_equal(out, np.round(out))
    changed = int((out != image).any(axis=(1, 2, 3)).sum())
    # two layers at p = 0.5: Invert applied once (changed) w.p. 0.5, twice or never: same
    assert 70 <= changed <= 130
