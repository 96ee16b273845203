"""Resolve what the insight commands look at: a run folder, a ``.keras`` or a ``.tflite``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnn_keras.errors import BnnError
from bnn_keras.training.run_folder import RunFolder, read_run_config


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
        folder = RunFolder(path)
        model = folder.model
        if not model.is_file():
            raise BnnError(f"run folder {path} has no model.keras (did the run finish?)")
        dataset = None
        if folder.config.is_file():
            dataset = read_run_config(folder.config).get("dataset")
            if dataset is not None and not isinstance(dataset, str):
                raise BnnError(f"run config {folder.config}: dataset must be a string, got "
                               f"{json.dumps(dataset)[:100]}")
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

    ds = data.load(dataset_name, batch_size=batch_size, seed=0)
    x, y = ds.arrays(split, limit)  # train: its first shuffled pass, the same every time
    return x, y, tuple(ds.input_shape), int(ds.num_classes)

