"""What every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass
class Dataset:
    """Train and test pipelines of ``(image, label)`` batches plus what a model needs.

    ``train`` is shuffled each epoch (with ``seed``), batched and prefetched; ``test``
    is batched in a fixed order. Images are float32, normalised; labels are int32.
    ``mean`` / ``std`` are the per-channel statistics (pixels scaled to [0, 1]) used to
    normalise, so a teacher that wants raw pixels can undo it.
    """

    name: str
    train: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    input_shape: tuple[int, int, int]
    train_size: int
    test_size: int
    class_names: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()  # per-channel mean the images were normalised with (0-1 scale)
    std: tuple[float, ...] = ()  # likewise the std; () when not a per-channel normalisation


def to_arrays(pipeline, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The (first ``limit``, or all) images and labels of a batched ``(x, y)`` pipeline,
    as numpy arrays; only the batches needed are read."""
    xs, ys, n = [], [], 0
    for x, y in pipeline:
        xs.append(x.numpy())
        ys.append(y.numpy())
        n += len(ys[-1])
        if limit and n >= limit:
            break
    x, y = np.concatenate(xs), np.concatenate(ys)
    return (x[:limit], y[:limit]) if limit else (x, y)
