"""Image datasets: tensorflow-datasets sets and image folders, with the papers' pipelines.

* ``cifar10`` / ``cifar100`` (32x32): train with 4-pixel padding, random crop and flip;
  test unchanged. Normalised with the set's own channel mean and std.
* ``imagenet2012`` / ``imagenette`` and ``folder:PATH``: train with a random-resized crop to
  ``image_size`` (224) of 8%-100% of the area and a flip; evaluate with the shorter side
  resized to ``int(image_size / eval_crop_pct)`` (256 at the default 0.875; BNext's timm
  evaluation uses 0.95 with ``eval_interpolation="bicubic"``) and a centre crop. ImageNet
  mean and std.
  ``imagenet2012`` reads the archives you downloaded from ``manual_dir`` (tfds' manual
  download); every tfds set is prepared in, or read from, ``data_dir``.
* ``augment="randaugment"`` adds RandAugment (BNext's timm ``rand-m7-mstd0.5-inc1``) after the crop.
* ``lighting=0.1`` adds AlexNet's PCA colour noise after the crop, on the uint8 crop before
  the flip, as ReActNet, BNN_NoBN and Bi-Real Net train on ImageNet.

Nothing here downloads: a tfds set must already be prepared in ``data_dir`` (``tfds build
NAME --data_dir DIR`` on a machine with internet), or, for ImageNet, be prepared from the
archives in ``manual_dir``. Otherwise the load fails at once with a one-line
:class:`~bnn_keras.errors.BnnError` saying where the data goes, instead of retrying a
download for minutes on an offline machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from bnn_keras.data import augment as aug
from bnn_keras.data.base import Dataset
from bnn_keras.data.options import DataOptions
from bnn_keras.errors import BnnError, first_line


@dataclass(frozen=True)
class ImageSetSpec:
    """How one image dataset is read and prepared."""

    tfds_name: str
    train_split: str
    test_split: str
    size: int
    style: str  # "cifar" or "imagenet"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    manual_files: tuple[str, ...] = ()  # archives tfds prepares the set from (manual_dir)


TFDS_SETS: dict[str, ImageSetSpec] = {
    "cifar10": ImageSetSpec("cifar10", "train", "test", 32, "cifar",
                            aug.CIFAR10_MEAN, aug.CIFAR10_STD),
    "cifar100": ImageSetSpec("cifar100", "train", "test", 32, "cifar",
                             aug.CIFAR100_MEAN, aug.CIFAR100_STD),
    "imagenet2012": ImageSetSpec("imagenet2012", "train", "validation", 224, "imagenet",
                                 aug.IMAGENET_MEAN, aug.IMAGENET_STD,
                                 ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")),
    "imagenette": ImageSetSpec("imagenette/full-size-v2", "train", "validation", 224,
                               "imagenet", aug.IMAGENET_MEAN, aug.IMAGENET_STD),
}


def train_transform(style: str, size: int, mean, std, options: DataOptions = DataOptions()):
    """The per-example training transform ``image uint8 (H, W, 3) -> float32 normalised``,
    with ``options``' augmentation (``augment``, ``randaugment``, ``lighting``).

    ``lighting`` > 0 applies :func:`~bnn_keras.data.augment.lighting` with that standard
    deviation where the official ImageNet pipelines do (``RandomResizedCrop``, ``Lighting``,
    ``RandomHorizontalFlip``, ``ToTensor``): to the crop as uint8, before the flip. It is
    off with ``augment="none"``.
    """
    augment, randaugment = options.augment, options.randaugment
    lighting = options.lighting if augment != "none" else 0.0

    def transform(image):
        image = tf.cast(image, tf.float32)
        if style == "cifar":
            image = tf.image.resize(image, (size, size)) if image.shape[0] != size else image
            if augment != "none":
                image = aug.pad_crop_flip(image)
            if lighting:
                image = tf.cast(aug.lighting(aug.to_uint8(image), lighting), tf.float32)
        elif augment == "none":
            image = aug.resize_center_crop(image, size, aug.eval_resize_size(size))
        else:
            image = aug.random_resized_crop(image, size, flip=not lighting)
            if lighting:
                image = tf.cast(aug.lighting(aug.to_uint8(image), lighting), tf.float32)
                image = tf.image.random_flip_left_right(image)
        if augment == "randaugment":
            image = aug.rand_augment(image, *randaugment)
        image = tf.ensure_shape(image, (size, size, 3))
        return aug.normalize(image, mean, std)

    return transform


def eval_transform(style: str, size: int, mean, std, options: DataOptions = DataOptions()):
    """The evaluation transform (no randomness). ImageNet style: the shorter side resized
    to ``int(size / options.eval_crop_pct)`` with ``options.eval_interpolation`` (see
    :func:`~bnn_keras.data.augment.resize_center_crop`), then the centre ``size`` square."""
    crop_pct, interpolation = options.eval_crop_pct, options.eval_interpolation

    def transform(image):
        image = tf.cast(image, tf.float32)
        if style == "cifar":
            if image.shape[0] != size:
                image = tf.image.resize(image, (size, size))
        else:
            image = aug.resize_center_crop(image, size, aug.eval_resize_size(size, crop_pct),
                                           interpolation)
        return aug.normalize(tf.ensure_shape(image, (size, size, 3)), mean, std)

    return transform


@dataclass(frozen=True)
class ImageSplits:
    """An image set's two splits of ``(uint8 image, label)`` examples, and what describes
    them."""

    name: str
    train: tf.data.Dataset
    test: tf.data.Dataset
    train_size: int
    test_size: int
    num_classes: int
    class_names: tuple[str, ...]
    style: str  # "cifar" or "imagenet"
    size: int  # the set's own size, used when options.image_size is 0
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def build_pipelines(splits: ImageSplits, options: DataOptions) -> Dataset:
    """The shuffled, augmented training pipeline and the evaluation pipeline of
    ``splits``, batched and prefetched."""
    size = options.image_size or splits.size
    mean, std = splits.mean, splits.std
    train_fn = train_transform(splits.style, size, mean, std, options)
    test_fn = eval_transform(splits.style, size, mean, std, options)
    shuffle = min(max(splits.train_size, 1), 10_000)
    train = (splits.train.shuffle(shuffle, seed=options.seed, reshuffle_each_iteration=True)
             .map(lambda x, y: (train_fn(x), tf.cast(y, tf.int32)),
                  num_parallel_calls=tf.data.AUTOTUNE)
             .batch(options.batch_size).prefetch(tf.data.AUTOTUNE))
    test = (splits.test.map(lambda x, y: (test_fn(x), tf.cast(y, tf.int32)),
                            num_parallel_calls=tf.data.AUTOTUNE)
            .batch(options.batch_size).prefetch(tf.data.AUTOTUNE))
    return Dataset(splits.name, train, test, splits.num_classes, (size, size, 3),
                   splits.train_size, splits.test_size, tuple(splits.class_names),
                   mean=tuple(mean), std=tuple(std))


def _split_size(info, split: str, ds: tf.data.Dataset) -> int:
    """Examples in ``split`` from the dataset info, else the pipeline's cardinality."""
    try:
        return int(info.splits[split].num_examples)
    except (KeyError, ValueError):
        return max(int(ds.cardinality().numpy()), 0)


def load_tfds(name: str, options: DataOptions = DataOptions()) -> Dataset:
    """Load a tensorflow-datasets image set (see :data:`TFDS_SETS`) as a :class:`Dataset`.

    ``name`` is ``cifar10``, ``cifar100``, ``imagenet2012`` or ``imagenette``. Of the
    ``options``, ``data_dir`` is tfds' data folder (default ``~/tensorflow_datasets``),
    ``manual_dir`` where the ImageNet archives are (tfds' manual download folder),
    ``image_size`` 0 keeps the set's size (32 or 224); CIFAR ignores the evaluation
    resize (``eval_crop_pct``, ``eval_interpolation``, see :func:`eval_transform`).
    """
    import tensorflow_datasets as tfds

    data_dir, manual_dir = options.data_dir or None, options.manual_dir or None
    spec = TFDS_SETS[name]
    try:
        builder = tfds.builder(spec.tfds_name, data_dir=data_dir or None)
        if not is_prepared(builder):
            _prepare_offline(builder, spec, data_dir, manual_dir)
        read = tfds.ReadConfig(shuffle_seed=options.seed)
        train = builder.as_dataset(split=spec.train_split, as_supervised=True,
                                   shuffle_files=True, read_config=read)
        test = builder.as_dataset(split=spec.test_split, as_supervised=True)
    except BnnError:
        raise
    except Exception as err:  # noqa: BLE001 - any tfds failure is a setup problem
        first = first_line(err, limit=240)
        hint = (" (put the ImageNet archives in --manual-dir)" if name == "imagenet2012"
                else "")
        raise BnnError(f"cannot load tfds dataset {spec.tfds_name!r} from "
                       f"{data_dir or '~/tensorflow_datasets'}: {first}; prepare it there "
                       f"and pass --data-dir{hint}") from None
    info = builder.info
    label = info.features["label"]
    train_size, test_size = _split_size(info, spec.train_split, train), _split_size(
        info, spec.test_split, test)
    splits = ImageSplits(name, train, test, train_size, test_size, int(label.num_classes),
                         tuple(label.names), spec.style, spec.size, spec.mean, spec.std)
    return build_pipelines(splits, options)


def is_prepared(builder) -> bool:
    """Whether the tfds builder's data is on disk (then reading it needs no network)."""
    return builder.data_path.exists()


def _prepare_offline(builder, spec: ImageSetSpec, data_dir: str | None,
                     manual_dir: str | None) -> None:
    """Prepare a tfds set that needs no download (ImageNet from the archives in
    ``manual_dir``), else a one-line error saying where to put the data."""
    import tensorflow_datasets as tfds

    where = data_dir or "~/tensorflow_datasets"
    if not spec.manual_files:
        raise BnnError(f"tfds dataset {spec.tfds_name!r} is not prepared in {where}, and "
                       f"bnn-keras does not download: run `tfds build {spec.tfds_name} "
                       f"--data_dir DIR` on a machine with internet (or copy a prepared "
                       f"{spec.tfds_name.split('/')[0]}/ folder into DIR), then pass "
                       "--data-dir DIR")
    missing = [f for f in spec.manual_files
               if not manual_dir or not (Path(manual_dir).expanduser() / f).is_file()]
    if missing:
        looked = f" in {manual_dir}" if manual_dir else ""
        raise BnnError(f"tfds dataset {spec.tfds_name!r} is not prepared in {where}: put "
                       f"{' and '.join(spec.manual_files)} in a folder and pass it as "
                       f"--manual-dir (missing{looked}: {', '.join(missing)}); it is "
                       "prepared into --data-dir once")
    config = tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
    builder.download_and_prepare(download_config=config)

