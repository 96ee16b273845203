"""tfds sets (mocked, offline) and the augmentations: shapes and ranges (image folders:
``tests/test_image_folders.py``)."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from bnn_keras import data
from bnn_keras.data import augment as aug
from bnn_keras.errors import BnnError
from tests.image_files import write_folder


@pytest.fixture(scope="module")
def mock_tfds():
    """tfds' fake data, standing in for sets prepared on disk."""
    from unittest import mock

    import tensorflow_datasets as tfds

    from bnn_keras.data import images

    with tfds.testing.mock_data(num_examples=6), \
            mock.patch.object(images, "is_prepared", lambda builder: True):
        yield


@pytest.mark.parametrize("name,classes,size,mean", [
    ("cifar10", 10, 32, aug.CIFAR10_MEAN), ("cifar100", 100, 32, aug.CIFAR100_MEAN),
])
def test_cifar_pipelines(mock_tfds, name, classes, size, mean):
    ds = data.load(name, batch_size=3, seed=1, data_dir="/nonexistent-tfds")
    assert ds.num_classes == classes and ds.input_shape == (size, size, 3)
    assert ds.mean == mean and len(ds.std) == 3
    assert ds.train_size == 6 and ds.test_size == 6
    x, y = next(iter(ds.train))
    assert x.shape == (3, size, size, 3) and x.dtype == tf.float32 and y.dtype == tf.int32
    lo = (0 - np.array(mean)) / np.array(ds.std)
    hi = (1 - np.array(mean)) / np.array(ds.std)
    assert np.all(x.numpy() >= lo.min() - 1e-5) and np.all(x.numpy() <= hi.max() + 1e-5)
    xt, _ = next(iter(ds.test))
    assert xt.shape == (3, size, size, 3)


@pytest.mark.parametrize("name,classes", [("imagenet2012", 1000), ("imagenette", 10)])
def test_imagenet_style_pipelines(mock_tfds, name, classes):
    ds = data.load(name, batch_size=2, manual_dir="/nonexistent-manual", image_size=64)
    assert ds.num_classes == classes and ds.input_shape == (64, 64, 3)
    assert ds.mean == aug.IMAGENET_MEAN
    x, y = next(iter(ds.train))
    xt, yt = next(iter(ds.test))
    assert x.shape == xt.shape == (2, 64, 64, 3)
    assert np.all((yt.numpy() >= 0) & (yt.numpy() < classes))


def test_unknown_augment():
    with pytest.raises(BnnError, match="augment must be one of .*got 'mixup'"):
        data.load("digits", augment="mixup")


def test_pad_crop_flip_is_a_shifted_window(rng):
    image = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    for _ in range(5):
        out = aug.pad_crop_flip(tf.constant(image)).numpy()
        assert out.shape == image.shape
        windows = [padded[i:i + 8, j:j + 8] for i in range(9) for j in range(9)]
        assert any(np.array_equal(out, w) or np.array_equal(out, w[:, ::-1]) for w in windows)


def test_crops_shapes_and_ranges(rng):
    image = tf.constant(rng.uniform(0, 255, (40, 70, 3)).astype(np.float32))
    for _ in range(5):
        out = aug.random_resized_crop(image, 32).numpy()
        assert out.shape == (32, 32, 3) and out.min() >= 0 and out.max() <= 255
    centre = aug.resize_center_crop(image, 28, 32).numpy()
    assert centre.shape == (28, 28, 3) and centre.min() >= 0 and centre.max() <= 255
    flat = aug.resize_center_crop(tf.fill((20, 50, 3), 7.0), 16, 18).numpy()
    np.testing.assert_allclose(flat, 7.0, atol=1e-4)
    norm = aug.normalize(tf.fill((2, 2, 3), 255.0), aug.IMAGENET_MEAN, aug.IMAGENET_STD).numpy()
    np.testing.assert_allclose(norm[0, 0], (1 - np.array(aug.IMAGENET_MEAN))
                               / np.array(aug.IMAGENET_STD), rtol=1e-6)


@pytest.mark.parametrize("op", sorted(aug.RAND_AUGMENT_OPS))
def test_rand_augment_ops_keep_shape_and_range(op, rng):
    image = tf.constant(rng.uniform(0, 255, (16, 20, 3)).astype(np.float32))
    out = aug.RAND_AUGMENT_OPS[op](image, tf.constant(10.0)).numpy()
    assert out.shape == (16, 20, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    if op not in ("AutoContrast",):  # random pixels already span [0, 255]
        assert not np.allclose(out, image.numpy()), op


def test_rand_augment_values(rng):
    image = tf.constant(rng.uniform(0, 255, (8, 8, 3)).astype(np.float32))
    np.testing.assert_allclose(aug.RAND_AUGMENT_OPS["Invert"](image, 0.0), 255 - image.numpy())
    sol = aug.RAND_AUGMENT_OPS["SolarizeIncreasing"](image, tf.constant(5.0)).numpy()
    expect = np.where(image.numpy() >= 128, 255 - image.numpy(), image.numpy())
    np.testing.assert_allclose(sol, expect)
    post = aug.RAND_AUGMENT_OPS["PosterizeIncreasing"](image, tf.constant(10.0)).numpy()
    assert set(np.unique(post)) <= {0.0, 128.0}  # 0 bits at level 10: black
    out = aug.rand_augment(image, num_layers=3, magnitude=9, magnitude_std=0.5).numpy()
    assert out.shape == (8, 8, 3) and 0 <= out.min() and out.max() <= 255
    same = aug.rand_augment(image, num_layers=2, prob=0.0).numpy()
    np.testing.assert_allclose(same, np.round(image.numpy()))  # whole levels, as timm's uint8


# ------------------------------------------- against the official transforms (fixture file)
# tests/data/transforms.npz is made by tests/make_transform_fixtures.py, which runs the
# official Lighting classes and timm's evaluation transform with BNext's arguments.

@pytest.fixture(scope="module")
def official():

    with np.load(Path(__file__).parent / "data" / "transforms.npz") as arrays:
        return dict(arrays)


def test_lighting_matches_the_official_class(official):
    image = official["lighting_input"]
    for alphastd, alpha, expect in zip(official["lighting_alphastd"], official["lighting_alpha"],
                                       official["lighting_output"]):
        out = aug.lighting(tf.constant(image), float(alphastd), alpha=tf.constant(alpha))
        assert out.dtype == tf.uint8
        np.testing.assert_array_equal(out.numpy(), expect, err_msg=f"alphastd {alphastd}")
    # at 0.1 the increment is ~0.01 of a level: after the uint8 truncation a channel drops
    # by one level where it is negative (not at 0) and keeps its value where it is positive
    small = official["lighting_alphastd"] == 0.1
    for inc, expect in zip(official["lighting_inc"][small], official["lighting_output"][small]):
        drop = np.where(inc < 0, (image > 0).astype(int), 0)
        np.testing.assert_array_equal(expect.astype(int), image.astype(int) - drop)


def test_lighting_increment_and_draws(official):
    flat = tf.fill((4, 5, 3), 128.0)
    for alpha, inc in zip(official["lighting_alpha"], official["lighting_inc"]):
        out = aug.lighting(flat, 1.0, alpha=tf.constant(alpha)).numpy()
        np.testing.assert_allclose(out - 128.0, np.broadcast_to(inc, out.shape), atol=1e-5)
    np.testing.assert_array_equal(aug.lighting(flat, 0.0), flat)
    # alpha ~ N(0, alphastd^2) per image: recover the draws from the increments
    vec = np.array(aug.IMAGENET_PCA_EIGVEC)
    val = np.array(aug.IMAGENET_PCA_EIGVAL)
    draws = np.stack([np.linalg.solve(vec, aug.lighting(flat, 2.0).numpy()[0, 0] - 128.0) / val
                      for _ in range(200)])
    assert np.all(np.abs(draws.mean(0)) < 0.5) and np.all(np.abs(draws.std(0) - 2.0) < 0.4)


@pytest.mark.parametrize("case", ["full", "part"])
def test_bnext_eval_matches_timm(official, case):
    """PIL's bicubic through tf.numpy_function: the same uint8 values as timm's transform."""
    from bnn_keras.data.images import eval_transform

    (top, bottom), (left, right) = official[f"eval_{case}_region"]
    image = official["eval_image"][top:bottom, left:right]
    size = int(official[f"eval_{case}_size"])
    expect = official[f"eval_{case}_output"]
    assert aug.eval_resize_size(size, 0.95) == {224: 235, 48: 50}[size]
    out = aug.resize_center_crop(tf.constant(image), size, aug.eval_resize_size(size, 0.95),
                                 "bicubic")
    np.testing.assert_array_equal(out.numpy(), expect.astype(np.float32))
    # the whole evaluation transform inside tf.data (graph mode), normalised as timm's
    # PrefetchLoader: (x - 255 mean) / (255 std)
    fn = eval_transform("imagenet", size, aug.IMAGENET_MEAN, aug.IMAGENET_STD,
                        data.DataOptions(eval_crop_pct=0.95, eval_interpolation="bicubic"))
    got = next(iter(tf.data.Dataset.from_tensors(image).map(fn))).numpy()
    want = ((expect - 255 * np.array(aug.IMAGENET_MEAN, np.float32))
            / (255 * np.array(aug.IMAGENET_STD, np.float32)))
    np.testing.assert_allclose(got, want, atol=1e-5)
    if case == "full":
        np.testing.assert_allclose(got[:4], official["eval_full_normalized_rows"], atol=1e-5)


def test_eval_geometry_is_torchvision():
    assert aug.eval_resize_size(224) == 256 and aug.eval_resize_size(224, 0.95) == 235
    # shorter side 235 -> the longer int(235 * 300 / 257) = 274; crop rows from
    # round(50 / 2) = 25 and columns from round(11 / 2) = 6 (half to even, like Python)
    rows = np.arange(300, dtype=np.float32)[:, None, None] * np.ones((1, 257, 3), np.float32)
    cols = np.arange(257, dtype=np.float32)[None, :, None] * np.ones((300, 1, 3), np.float32)
    image = tf.constant(np.concatenate([rows[..., :1], cols[..., :1], rows[..., :1]], -1))
    out = aug.resize_center_crop(image, 224, 235).numpy()
    scale = 300 / 274, 257 / 235
    np.testing.assert_allclose(out[0, 0, :2], [(25 + 0.5) * scale[0] - 0.5,
                                               (6 + 0.5) * scale[1] - 0.5], atol=1e-3)


def test_lighting_in_the_training_pipeline(rng):
    """Lighting works on the uint8 crop, as the official pipelines: pixels stay whole levels."""
    from bnn_keras.data.images import train_transform

    image = tf.constant(rng.integers(0, 256, (40, 50, 3)).astype(np.uint8))
    mean, std = np.array(aug.IMAGENET_MEAN), np.array(aug.IMAGENET_STD)
    for lighting in (0.0, 0.1):
        out = train_transform("imagenet", 24, aug.IMAGENET_MEAN, aug.IMAGENET_STD,
                              data.DataOptions(lighting=lighting))(image).numpy()
        pixels = (out * std + mean) * 255
        assert out.shape == (24, 24, 3)
        whole = np.abs(pixels - np.round(pixels)).max() < 1e-3
        assert whole == bool(lighting)  # without lighting the bilinear crop stays float
    with pytest.raises(BnnError, match="lighting"):
        data.DataOptions(lighting=-1.0)


def test_pipeline_options(mock_tfds, tmp_path):
    ds = data.load("imagenette", batch_size=2, image_size=32, lighting=0.1, eval_crop_pct=0.95,
                   eval_interpolation="bicubic")
    x, _ = next(iter(ds.train))
    xt, _ = next(iter(ds.test))
    assert x.shape == xt.shape == (2, 32, 32, 3)
    root = write_folder(tmp_path / "pets")
    with pytest.raises(BnnError, match="interpolation"):
        data.load(f"folder:{root}", eval_interpolation="lanczos")
    with pytest.raises(BnnError, match="crop_pct"):
        data.load(f"folder:{root}", eval_crop_pct=1.5)
