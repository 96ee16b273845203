"""Image folders, ``PATH/train/<class>/`` and ``PATH/val/<class>/``, as datasets.

Every file is decoded once before the load returns: one that is not a readable image (or
would decode to more than :data:`MAX_DECODED_PIXELS`) is a one-line error naming it, so a
run never trains on fewer images than the folder holds, nor stops mid-epoch on a corrupt
file. A class folder without images is refused too.
The pipelines are ImageNet's (see :mod:`bnn_keras.data.images`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import tensorflow as tf

from bnn_keras.data import augment as aug
from bnn_keras.data.base import Dataset
from bnn_keras.data.images import ImageSplits, build_pipelines
from bnn_keras.data.options import DataOptions
from bnn_keras.errors import BnnError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

#: The most pixels (width x height x frames) one file may decode to: a small file can
#: claim gigapixels (a "decompression bomb"); 64 Mi pixels is about 200 MB decoded, above
#: any photo in ImageNet.
MAX_DECODED_PIXELS = 64 * 2**20


def shown(path: str | bytes | os.PathLike) -> str:
    """``path`` for a message: bytes that are not UTF-8 (a file name from another
    system) shown as ``\\xNN`` escapes instead of failing to print."""
    text = os.fsdecode(path)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _list_folder(root: Path, classes: list[str] | None = None):
    """The class names and every image's path (as bytes, as the file system names it)
    and label under ``root``; a class folder without images is refused."""
    if not root.is_dir():
        raise BnnError(f"image folder {shown(root)} does not exist")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if classes is None:
        classes = found
    elif found != classes:
        raise BnnError(f"{shown(root)} has classes {[shown(c) for c in found[:5]]}... but "
                       f"train/ has {[shown(c) for c in classes[:5]]}...; both splits need "
                       "the same class folders")
    if len(classes) < 2:
        raise BnnError(f"{shown(root)} needs one sub-folder per class (at least 2) holding "
                       f"images ({', '.join(IMAGE_SUFFIXES)})")
    paths, labels = [], []
    for index, cls in enumerate(classes):
        files = sorted(p for p in (root / cls).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise BnnError(f"class folder {shown(root / cls)} holds no images "
                           f"({', '.join(IMAGE_SUFFIXES)}): add some or remove the folder")
        paths += [os.fsencode(p) for p in files]
        labels += [index] * len(files)
    return classes, paths, labels


def _header_problem(path: bytes) -> str | None:
    """Why ``path`` is refused from its header alone (read by PIL, nothing decoded), or
    ``None``: not an image, or more pixels than :data:`MAX_DECODED_PIXELS`."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(os.fsdecode(path)) as image:
                pixels = image.width * image.height * getattr(image, "n_frames", 1)
    except Image.DecompressionBombError:
        pixels = None
    except Exception:  # noqa: BLE001 - PIL raises many kinds for a file it cannot read
        return "not a readable image"
    if pixels is None or pixels > MAX_DECODED_PIXELS:
        return f"decodes to over {MAX_DECODED_PIXELS} pixels"
    return None


def _undecodable(paths: list[bytes]) -> set[bytes]:
    """The files of ``paths`` TensorFlow's decoder (the one training uses) fails on, each
    decoded in full, in parallel; libjpeg's lines about them are kept off the terminal."""
    from bnn_keras.native_logs import quiet_native_logs

    if not paths:
        return set()
    stream = tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), tf.constant(paths)))
    stream = stream.map(lambda i, path: (i, tf.shape(_decode(path))[0]),
                        num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    with quiet_native_logs():
        decoded = {int(i) for i, _ in stream.as_numpy_iterator()}
    return {p for i, p in enumerate(paths) if i not in decoded}


def image_problems(paths: list[str | bytes]) -> dict[bytes, str]:
    """The files of ``paths`` a run could not train on, with the reason: not an image,
    over :data:`MAX_DECODED_PIXELS` once decoded, or failing to decode. Every file is
    decoded once, with the decoder the pipelines use, so a corrupt middle (valid first
    and last bytes) is found here rather than mid-epoch, at the cost of one decode per
    image before the run starts."""
    paths = [os.fsencode(p) for p in paths]
    problems = {p: why for p in paths if (why := _header_problem(p))}
    rest = [p for p in paths if p not in problems]
    problems.update({p: "does not decode" for p in _undecodable(rest)})
    return {p: problems[p] for p in paths if p in problems}


def unreadable_images(paths: list[str]) -> list[str]:
    """The files of ``paths`` that are not images a run can train on (see
    :func:`image_problems`)."""
    return [os.fsdecode(p) for p in image_problems(paths)]


def _check_images(root: Path, paths: list[bytes]) -> None:
    """Refuse a folder with files that are not readable images, naming them.

    Such files stop the load here (rather than being skipped) so that a run never trains,
    silently, on fewer images than the folder holds, and never fails mid-epoch instead.
    """
    bad = image_problems(paths)
    if bad:
        listed = [f"{shown(p)} ({why})" for p, why in list(bad.items())[:5]]
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise BnnError(f"{len(bad)} files under {shown(root)} are not readable images: "
                       f"{', '.join(listed)}{more}; remove or replace them")


def _decode(path):
    data = tf.io.read_file(path)
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return tf.ensure_shape(image, (None, None, 3))


def load_folder(path: str, options: DataOptions = DataOptions()) -> Dataset:
    """An image folder ``PATH/train/<class>/*.jpg`` and ``PATH/val/<class>/*.jpg``.

    Classes are the sub-folder names in sorted order. A file that is not a readable image
    is a one-line error naming it (see :func:`_check_images`). Images are decoded to RGB
    and go through the ImageNet pipelines (random-resized crop for training, resize and
    centre crop for evaluation) at ``options.image_size`` (0: 224), with ImageNet's mean
    and std; the other ``options`` as in :func:`~bnn_keras.data.images.load_tfds`.
    """
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
