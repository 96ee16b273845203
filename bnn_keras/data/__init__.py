"""Datasets as ``tf.data`` pipelines: ``load(name, batch_size=..., seed=...)``.

``digits`` (bundled with scikit-learn, offline) is the default. ``cifar10``, ``cifar100``,
``imagenet2012`` and ``imagenette`` come through tensorflow-datasets (``data_dir``,
``manual_dir``); ``folder:PATH`` reads ``PATH/train/<class>/`` and ``PATH/val/<class>/``.
See :mod:`bnn_keras.data.images` for the pipelines, :mod:`bnn_keras.data.folders` for
image folders and :mod:`bnn_keras.data.augment` for the augmentations and per-dataset
normalisation. Importing this package does not import TensorFlow (the loaders do).
"""

from __future__ import annotations

from collections.abc import Callable

from bnn_keras.data.base import (
    AUGMENTS,
    INTERPOLATIONS,
    SPLITS,
    Dataset,
    check_input_shape,
    to_arrays,
)
from bnn_keras.errors import BnnError

FOLDER_PREFIX = "folder:"
_TFDS_NAMES = ("cifar10", "cifar100", "imagenet2012", "imagenette")


def _digits(batch_size: int, seed: int, *, image_size: int = 0, **_ignored) -> Dataset:
    from bnn_keras.data.digits import load_digits_dataset

    return load_digits_dataset(batch_size=batch_size, seed=seed, size=image_size or 32)


def _tfds(name: str) -> Callable[..., Dataset]:
    def loader(batch_size: int, seed: int, **kwargs) -> Dataset:
        from bnn_keras.data.images import load_tfds

        return load_tfds(name, batch_size, seed, **kwargs)

    return loader


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": _digits, **{n: _tfds(n) for n in _TFDS_NAMES}}


def names() -> list[str]:
    """Names of the datasets :func:`load` knows (plus ``folder:PATH`` for any folder)."""
    return list(_LOADERS)


def is_known(name: str) -> bool:
    """Whether ``name`` is a known dataset or a ``folder:PATH``."""
    return name in _LOADERS or (name.startswith(FOLDER_PREFIX) and len(name) > len(FOLDER_PREFIX))


def load(name: str = "digits", batch_size: int = 64, seed: int = 0, **kwargs) -> Dataset:
    """Load a dataset by name (see :func:`names`), or ``folder:PATH``.

    Keyword options (ignored where they do not apply): ``data_dir`` and ``manual_dir``
    (tfds), ``image_size`` (0: the set's default), ``augment`` (``default``,
    ``randaugment``, ``none``), ``randaugment`` (``(layers, magnitude, std)``), ``lighting``
    (PCA colour noise std), ``eval_crop_pct`` and ``eval_interpolation`` (the ImageNet-style
    evaluation resize; see :mod:`bnn_keras.data.images`).

    Example:
        ```python
        ds = bnn_keras.data.load("cifar10", batch_size=128, data_dir="/data/tfds")
        ```
    """
    if batch_size < 1:
        raise BnnError(f"batch size must be >= 1, got {batch_size}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if name.startswith(FOLDER_PREFIX) and len(name) > len(FOLDER_PREFIX):
        from bnn_keras.data.folders import load_folder

        return load_folder(name[len(FOLDER_PREFIX):], batch_size, seed, **kwargs)
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise BnnError(f"unknown dataset {name!r}; known datasets: {', '.join(names())}, "
                       f"{FOLDER_PREFIX}PATH") from None
    return loader(batch_size=batch_size, seed=seed, **kwargs)


def __getattr__(name: str):
    if name in ("digits_arrays", "load_digits_dataset"):  # imported on use: TensorFlow
        from bnn_keras.data import digits

        return getattr(digits, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AUGMENTS", "INTERPOLATIONS", "SPLITS", "Dataset", "check_input_shape", "digits_arrays",
           "is_known",
           "load", "load_digits_dataset", "names", "to_arrays"]
