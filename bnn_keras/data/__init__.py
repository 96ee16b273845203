"""Datasets as ``tf.data`` pipelines: ``load(name, batch_size=..., seed=...)``.

``digits`` (bundled with scikit-learn, offline) is the default. ``cifar10``, ``cifar100``,
``imagenet2012`` and ``imagenette`` come through tensorflow-datasets (``data_dir``,
``manual_dir``); ``folder:PATH`` reads ``PATH/train/<class>/`` and ``PATH/val/<class>/``.
Every loader takes one :class:`~bnn_keras.data.options.DataOptions`.
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
from bnn_keras.data.options import DataOptions
from bnn_keras.errors import BnnError

FOLDER_PREFIX = "folder:"
_TFDS_NAMES = ("cifar10", "cifar100", "imagenet2012", "imagenette")


def _digits(options: DataOptions) -> Dataset:
    from bnn_keras.data.digits import load_digits_dataset

    return load_digits_dataset(batch_size=options.batch_size, seed=options.seed,
                               size=options.image_size or 32)


def _tfds(name: str) -> Callable[[DataOptions], Dataset]:
    def loader(options: DataOptions) -> Dataset:
        from bnn_keras.data.images import load_tfds

        return load_tfds(name, options)

    return loader


_LOADERS: dict[str, Callable[[DataOptions], Dataset]] = {
    "digits": _digits, **{n: _tfds(n) for n in _TFDS_NAMES}}


def names() -> list[str]:
    """Names of the datasets :func:`load` knows (plus ``folder:PATH`` for any folder)."""
    return list(_LOADERS)


def is_known(name: str) -> bool:
    """Whether ``name`` is a known dataset or a ``folder:PATH``."""
    return name in _LOADERS or (name.startswith(FOLDER_PREFIX) and len(name) > len(FOLDER_PREFIX))


def check_name(name: str) -> None:
    """A one-line :class:`BnnError` naming the known datasets unless ``name`` is one
    (or a ``folder:PATH``); nothing is loaded."""
    if not is_known(name):
        raise BnnError(f"unknown dataset {name!r}; known datasets: {', '.join(names())}, "
                       f"{FOLDER_PREFIX}PATH")


def load(name: str = "digits", *, options: DataOptions | None = None, **values) -> Dataset:
    """Load a dataset by name (see :func:`names`), or ``folder:PATH``, with ``options``
    (default :class:`DataOptions`) and ``values`` set on them: ``batch_size=128``,
    ``seed``, ``data_dir``, ``augment``, ... (the fields of :class:`DataOptions`; options
    a dataset has no use for are left unused, a name that is no option is a one-line
    :class:`BnnError`).

    Example:
        ```python
        ds = bnn_keras.data.load("cifar10", batch_size=128, data_dir="/data/tfds")
        ```
    """
    options = (options or DataOptions()).updated(**values)
    check_name(name)
    if name.startswith(FOLDER_PREFIX):
        from bnn_keras.data.folders import load_folder

        return load_folder(name[len(FOLDER_PREFIX):], options)
    return _LOADERS[name](options)


def __getattr__(name: str):
    if name in ("digits_arrays", "load_digits_dataset"):  # imported on use: TensorFlow
        from bnn_keras.data import digits

        return getattr(digits, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AUGMENTS", "INTERPOLATIONS", "SPLITS", "DataOptions", "Dataset", "check_input_shape",
           "check_name", "digits_arrays", "is_known", "load", "load_digits_dataset", "names",
           "to_arrays"]
