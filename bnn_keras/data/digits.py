"""scikit-learn's handwritten digits (1,797 8x8 images, 10 classes), bundled and offline."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bnn_keras.data.base import Dataset

TEST_FRACTION = 0.2
SPLIT_SEED = 0  # the split is fixed; `seed` only changes shuffling


def digits_arrays(size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed stratified split as arrays: ``x_train, y_train, x_test, y_test``.

    Images are resized (bilinear) from 8x8 to ``size x size``, repeated to 3 channels and
    standardised with the train split's mean and std, so pixels have zero mean and unit
    variance over the training set.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images.astype(np.float32)[..., None] / 16.0
    labels = bunch.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )

    def prepare(x: np.ndarray) -> np.ndarray:
        x = tf.image.resize(x, (size, size), method="bilinear").numpy()
        return np.repeat(x, 3, axis=-1)

    x_train, x_test = prepare(x_train), prepare(x_test)
    mean, std = float(x_train.mean()), float(x_train.std())
    return (x_train - mean) / std, y_train, (x_test - mean) / std, y_test


def load_digits_dataset(batch_size: int = 64, seed: int = 0, size: int = 32) -> Dataset:
    """The digits as ``tf.data`` pipelines (shuffled, batched, prefetched)."""
    x_train, y_train, x_test, y_test = digits_arrays(size)
    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    test = (
        tf.data.Dataset.from_tensor_slices((x_test, y_test))
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    return Dataset("digits", train, test, 10, (size, size, 3), len(x_train), len(x_test),
                   tuple(str(i) for i in range(10)))
