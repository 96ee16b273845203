"""Resolve what the insight commands look at: a run folder, a ``.keras`` or a ``.tflite``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnn_keras.errors import BnnError


@dataclass
class Source:
    """A model to look at and the dataset it was trained on (when known)."""

    path: Path
    kind: str  # "keras" or "tflite"
    run_dir: Path | None = None
    dataset: str | None = None


def resolve(target: str | Path) -> Source:
    """A run folder (uses its ``model.keras`` and config's dataset), or a model file."""
    path = Path(target)
    if path.is_dir():
        model = path / "model.keras"
        if not model.is_file():
            raise BnnError(f"run folder {path} has no model.keras (did the run finish?)")
        dataset = None
        if (path / "config.json").is_file():
            try:
                dataset = json.loads((path / "config.json").read_text()).get("dataset")
            except ValueError:
                raise BnnError(f"{path / 'config.json'} is not valid JSON") from None
        return Source(model, "keras", path, dataset)
    if not path.exists():
        raise BnnError(f"not found: {path}")
    if path.suffix == ".keras":
        return Source(path, "keras")
    if path.suffix == ".tflite":
        return Source(path, "tflite")
    raise BnnError(f"expected a run folder, a .keras or a .tflite file, got {path}")


def load_split(dataset_name: str, split: str, limit: int | None = None,
               batch_size: int = 128) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], int]:
    """All (or the first ``limit``) images and labels of a split, as numpy arrays, with the
    images' shape and the dataset's number of classes."""
    from bnn_keras import data

    if split not in ("train", "test"):
        raise BnnError(f"split must be 'train' or 'test', got {split!r}")
    ds = data.load(dataset_name, batch_size=batch_size, seed=0)
    # the train pipeline is shuffled with seed 0: its first pass is the same every time
    pipeline = ds.test if split == "test" else ds.train
    x, y = data.to_arrays(pipeline, limit)
    return x, y, tuple(ds.input_shape), int(ds.num_classes)


def split_arrays(dataset_name: str, split: str, limit: int | None = None,
                 batch_size: int = 128) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """All (or the first ``limit``) images and labels of a split, as numpy arrays."""
    return load_split(dataset_name, split, limit, batch_size)[:3]


def check_input_shape(model_shape, data_shape, model_name: str, dataset: str) -> None:
    """One-line error when the dataset's images do not fit the model."""
    model_shape = tuple(int(d) for d in model_shape if d is not None)
    if tuple(model_shape) != tuple(data_shape):
        raise BnnError(f"dataset {dataset!r} has images of shape {tuple(data_shape)} but "
                       f"{model_name} expects {tuple(model_shape)}")
