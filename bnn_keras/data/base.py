"""What every dataset loader returns, and the pipeline options' choices.

Nothing here imports TensorFlow, so a config can check its options without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bnn_keras.errors import BnnError

if TYPE_CHECKING:
    import tensorflow as tf

#: training augmentations: the papers' own, that plus RandAugment, or none
AUGMENTS = ("default", "randaugment", "none")
#: resize interpolations of the ImageNet-style evaluation (bicubic: PIL's, as timm)
INTERPOLATIONS = ("bilinear", "bicubic")
#: the splits of a :class:`Dataset`
SPLITS = ("train", "test")


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

    def arrays(self, split: str = "test", limit: int | None = None,
               ) -> tuple[np.ndarray, np.ndarray]:
        """Images (float32) and labels of ``split`` (``train`` or ``test``) as numpy
        arrays: all, or the first ``limit``. The train split's order is its first
        shuffled pass, the same for the same ``seed``.

        Example:
            ```python
            x, y = bnn_keras.data.load("digits").arrays("test", limit=256)
            ```
        """
        if split not in SPLITS:
            raise BnnError(f"split must be 'test' or 'train', got {split!r}")
        x, y = to_arrays(self.train if split == "train" else self.test, limit)
        return x.astype(np.float32, copy=False), y


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


def check_input_shape(model_shape, data_shape, model_name: str, dataset: str) -> None:
    """A one-line :class:`BnnError` when a dataset's images (``data_shape``) do not fit a
    model's input (``model_shape``, its batch axis left out or ``None``)."""
    model_shape = tuple(int(d) for d in model_shape if d is not None)
    if tuple(model_shape) != tuple(data_shape):
        raise BnnError(f"dataset {dataset!r} has images of shape {tuple(data_shape)} but "
                       f"{model_name} expects {tuple(model_shape)}")
