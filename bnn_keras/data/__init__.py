"""Datasets as ``tf.data`` pipelines: ``load(name, batch_size=..., seed=...)``.

``digits`` (bundled with scikit-learn, offline) is the default.
"""

from __future__ import annotations

from collections.abc import Callable

from bnn_keras.data.base import Dataset
from bnn_keras.data.digits import digits_arrays, load_digits_dataset
from bnn_keras.errors import BnnError

_LOADERS: dict[str, Callable[..., Dataset]] = {"digits": load_digits_dataset}


def names() -> list[str]:
    """Names of the datasets :func:`load` knows."""
    return list(_LOADERS)


def load(name: str = "digits", batch_size: int = 64, seed: int = 0, **kwargs) -> Dataset:
    """Load a dataset by name (see :func:`names`)."""
    if batch_size < 1:
        raise BnnError(f"batch size must be >= 1, got {batch_size}")
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise BnnError(f"unknown dataset {name!r}; known datasets: {', '.join(names())}") from None
    return loader(batch_size=batch_size, seed=seed, **kwargs)


__all__ = ["Dataset", "digits_arrays", "load", "load_digits_dataset", "names"]
