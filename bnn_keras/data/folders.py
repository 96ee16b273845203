"""Image folders, ``PATH/train/<class>/`` and ``PATH/val/<class>/``, as datasets.

Every file is checked before the load returns: one that is not a readable image is a
one-line error naming it, so a run never trains on fewer images than the folder holds.
The pipelines are ImageNet's (see :mod:`bnn_keras.data.images`).
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from bnn_keras.data import augment as aug
from bnn_keras.data.base import Dataset
from bnn_keras.data.images import ImageSplits, PipelineOptions, build_pipelines
from bnn_keras.errors import BnnError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


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
    cameras write) are decoded in full to be sure, so the check stays cheap on large folders.
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
    options = PipelineOptions(batch_size, seed, image_size, augment, randaugment,
                              lighting, eval_crop_pct, eval_interpolation)
    root = Path(path)
    classes, train_paths, train_labels = _list_folder(root / "train")
    _, val_paths, val_labels = _list_folder(root / "val", classes)
    _check_images(root, train_paths + val_paths)

    def files(paths, labels):
        ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int32)))
        return ds.map(lambda p, y: (_decode(p), y), num_parallel_calls=tf.data.AUTOTUNE)

    splits = ImageSplits(f"folder:{path}", files(train_paths, train_labels),
                         files(val_paths, val_labels), len(train_paths), len(val_paths),
                         len(classes), tuple(classes), "imagenet", 224, aug.IMAGENET_MEAN,
                         aug.IMAGENET_STD)
    return build_pipelines(splits, options)
