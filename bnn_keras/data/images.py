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
* ``augment="randaugment"`` adds RandAugment (BNext's ``rand-m7-mstd0.5``) after the crop.
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
from bnn_keras.errors import BnnError

AUGMENTS = ("default", "randaugment", "none")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


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


def _check_augment(augment: str) -> None:
    if augment not in AUGMENTS:
        raise BnnError(f"unknown augmentation {augment!r}; choose from {', '.join(AUGMENTS)}")


def _check_lighting(lighting: float) -> None:
    if not lighting >= 0:
        raise BnnError(f"lighting (PCA noise std) must be >= 0, got {lighting}")


def _check_eval(crop_pct: float, interpolation: str) -> None:
    if not 0 < crop_pct <= 1:
        raise BnnError(f"eval crop_pct must be in (0, 1], got {crop_pct}")
    if interpolation not in aug.INTERPOLATIONS:
        raise BnnError(f"unknown eval interpolation {interpolation!r}; choose from "
                       f"{', '.join(aug.INTERPOLATIONS)}")


def train_transform(style: str, size: int, mean, std, augment: str = "default",
                    randaugment: tuple[int, float, float] = (2, 7.0, 0.5),
                    lighting: float = 0.0):
    """The per-example training transform ``image uint8 (H, W, 3) -> float32 normalised``.

    ``lighting`` > 0 applies :func:`~bnn_keras.data.augment.lighting` with that standard
    deviation where the official ImageNet pipelines do (``RandomResizedCrop``, ``Lighting``,
    ``RandomHorizontalFlip``, ``ToTensor``): to the crop as uint8, before the flip. It is
    off with ``augment="none"``.
    """
    _check_augment(augment)
    _check_lighting(lighting)
    lighting = lighting if augment != "none" else 0.0

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


def eval_transform(style: str, size: int, mean, std, crop_pct: float = aug.DEFAULT_CROP_PCT,
                   interpolation: str = "bilinear"):
    """The evaluation transform (no randomness). ImageNet style: the shorter side resized
    to ``int(size / crop_pct)`` with ``interpolation`` (see
    :func:`~bnn_keras.data.augment.resize_center_crop`), then the centre ``size`` square."""
    _check_eval(crop_pct, interpolation)

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


def _pipelines(name, train, test, train_size, test_size, num_classes, class_names, spec_style,
               size, mean, std, batch_size, seed, augment, randaugment, lighting,
               eval_crop_pct, eval_interpolation) -> Dataset:
    train_fn = train_transform(spec_style, size, mean, std, augment, randaugment, lighting)
    test_fn = eval_transform(spec_style, size, mean, std, eval_crop_pct, eval_interpolation)
    shuffle = min(max(train_size, 1), 10_000)
    train = (train.shuffle(shuffle, seed=seed, reshuffle_each_iteration=True)
             .map(lambda x, y: (train_fn(x), tf.cast(y, tf.int32)),
                  num_parallel_calls=tf.data.AUTOTUNE)
             .batch(batch_size).prefetch(tf.data.AUTOTUNE))
    test = (test.map(lambda x, y: (test_fn(x), tf.cast(y, tf.int32)),
                     num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))
    return Dataset(name, train, test, num_classes, (size, size, 3), train_size, test_size,
                   tuple(class_names), mean=tuple(mean), std=tuple(std))


def _split_size(info, split: str, ds: tf.data.Dataset) -> int:
    """Examples in ``split`` from the dataset info, else the pipeline's cardinality."""
    try:
        return int(info.splits[split].num_examples)
    except (KeyError, ValueError):
        return max(int(ds.cardinality().numpy()), 0)


def load_tfds(name: str, batch_size: int = 64, seed: int = 0, *, data_dir: str | None = None,
              manual_dir: str | None = None, image_size: int = 0, augment: str = "default",
              randaugment: tuple[int, float, float] = (2, 7.0, 0.5), lighting: float = 0.0,
              eval_crop_pct: float = aug.DEFAULT_CROP_PCT,
              eval_interpolation: str = "bilinear") -> Dataset:
    """Load a tensorflow-datasets image set (see :data:`TFDS_SETS`) as a :class:`Dataset`.

    Args:
        name: ``cifar10``, ``cifar100``, ``imagenet2012`` or ``imagenette``.
        data_dir: tfds' data folder (default ``~/tensorflow_datasets``).
        manual_dir: where the ImageNet archives are (tfds' manual download folder).
        image_size: output size; 0 keeps the set's default (32 or 224).
        augment: ``default`` (the papers'), ``randaugment`` (adds RandAugment) or ``none``.
        lighting: PCA colour noise standard deviation (0: off; the official ImageNet
            pipelines of ReActNet, BNN_NoBN and Bi-Real Net use 0.1).
        eval_crop_pct, eval_interpolation: the ImageNet-style evaluation resize (see
            :func:`eval_transform`); CIFAR ignores them.
    """
    import tensorflow_datasets as tfds

    _check_augment(augment)
    _check_lighting(lighting)
    _check_eval(eval_crop_pct, eval_interpolation)
    spec = TFDS_SETS[name]
    size = image_size or spec.size
    try:
        builder = tfds.builder(spec.tfds_name, data_dir=data_dir or None)
        if not is_prepared(builder):
            _prepare_offline(builder, spec, data_dir, manual_dir)
        read = tfds.ReadConfig(shuffle_seed=seed)
        train = builder.as_dataset(split=spec.train_split, as_supervised=True,
                                   shuffle_files=True, read_config=read)
        test = builder.as_dataset(split=spec.test_split, as_supervised=True)
    except BnnError:
        raise
    except Exception as err:  # noqa: BLE001 - any tfds failure is a setup problem
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:240]
        hint = (" (put the ImageNet archives in --manual-dir)" if name == "imagenet2012"
                else "")
        raise BnnError(f"cannot load tfds dataset {spec.tfds_name!r} from "
                       f"{data_dir or '~/tensorflow_datasets'}: {first}; prepare it there "
                       f"and pass --data-dir{hint}") from None
    info = builder.info
    label = info.features["label"]
    train_size, test_size = _split_size(info, spec.train_split, train), _split_size(
        info, spec.test_split, test)
    return _pipelines(name, train, test, train_size, test_size, int(label.num_classes),
                      label.names, spec.style, size, spec.mean, spec.std, batch_size, seed,
                      augment, randaugment, lighting, eval_crop_pct, eval_interpolation)


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


def _list_folder(root: Path, classes: list[str] | None = None):
    if not root.is_dir():
        raise BnnError(f"image folder {root} does not exist")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if classes is None:
        classes = found
    elif found != classes:
        raise BnnError(f"{root} has classes {found[:5]}... but train/ has {classes[:5]}...; "
                       "both splits need the same class folders")
    paths, labels = [], []
    for index, cls in enumerate(classes):
        files = sorted(p for p in (root / cls).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += [str(p) for p in files]
        labels += [index] * len(files)
    if len(classes) < 2 or not paths:
        raise BnnError(f"{root} needs one sub-folder per class (at least 2) holding images "
                       f"({', '.join(IMAGE_SUFFIXES)})")
    return classes, paths, labels


_SIGNATURES = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png", b"GIF87a": "gif",
               b"GIF89a": "gif", b"BM": "bmp"}
_TRAILERS = {"jpeg": b"\xff\xd9", "png": b"IEND\xaeB`\x82", "gif": b"\x3b"}


def _looks_whole(path: str) -> bool:
    """A cheap check of a file: a known image signature at the start and the format's end
    marker at the end (a BMP: the size its header states)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            size = f.seek(0, 2)
            f.seek(max(0, size - 8))
            tail = f.read()
    except OSError:
        return False
    kind = next((k for sig, k in _SIGNATURES.items() if head.startswith(sig)), None)
    if kind == "bmp":
        return len(head) >= 6 and int.from_bytes(head[2:6], "little") <= size
    return kind is not None and tail.endswith(_TRAILERS[kind])


def _decodes(path: str) -> bool:
    try:
        _decode(tf.constant(path))
    except (tf.errors.OpError, ValueError):
        return False
    return True


def unreadable_images(paths: list[str]) -> list[str]:
    """The files of ``paths`` that TensorFlow cannot decode as images.

    Each file gets the cheap check of :func:`_looks_whole` (two small reads); only the
    few that fail it (not an image, cut short, or data after the end marker as some
    cameras write) are decoded in full to be sure, so a million files cost seconds.
    """
    return [p for p in paths if not _looks_whole(p) and not _decodes(p)]


def _check_images(root: Path, paths: list[str]) -> None:
    """Refuse a folder with files that are not readable images, naming them.

    Such files stop the load here (rather than being skipped) so that a run never trains,
    silently, on fewer images than the folder holds, and never fails mid-epoch instead.
    """
    bad = unreadable_images(paths)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise BnnError(f"{len(bad)} files under {root} are not readable images: {shown}; "
                       "remove or replace them")


def _decode(path):
    data = tf.io.read_file(path)
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return tf.ensure_shape(image, (None, None, 3))


def load_folder(path: str, batch_size: int = 64, seed: int = 0, *, image_size: int = 0,
                augment: str = "default", randaugment: tuple[int, float, float] = (2, 7.0, 0.5),
                lighting: float = 0.0, eval_crop_pct: float = aug.DEFAULT_CROP_PCT,
                eval_interpolation: str = "bilinear", **_ignored) -> Dataset:
    """An image folder ``PATH/train/<class>/*.jpg`` and ``PATH/val/<class>/*.jpg``.

    Classes are the sub-folder names in sorted order. A file that is not a readable image
    is a one-line error naming it (see :func:`_check_images`). Images are decoded to RGB
    and go through the ImageNet pipelines (random-resized crop for training, resize and
    centre crop for evaluation) at ``image_size`` (default 224), with ImageNet's mean and
    std; ``lighting``, ``eval_crop_pct`` and ``eval_interpolation`` as in :func:`load_tfds`.
    """
    _check_augment(augment)
    _check_lighting(lighting)
    _check_eval(eval_crop_pct, eval_interpolation)
    root = Path(path)
    classes, train_paths, train_labels = _list_folder(root / "train")
    _, val_paths, val_labels = _list_folder(root / "val", classes)
    _check_images(root, train_paths + val_paths)
    size = image_size or 224

    def files(paths, labels):
        ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int32)))
        return ds.map(lambda p, y: (_decode(p), y), num_parallel_calls=tf.data.AUTOTUNE)

    return _pipelines(f"folder:{path}", files(train_paths, train_labels),
                      files(val_paths, val_labels), len(train_paths), len(val_paths),
                      len(classes), classes, "imagenet", size, aug.IMAGENET_MEAN,
                      aug.IMAGENET_STD, batch_size, seed, augment, randaugment, lighting,
                      eval_crop_pct, eval_interpolation)
