"""Initializers bnn_keras writes into model files."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="bnn_keras")
class BinomialBlur(keras.initializers.Initializer):
    r"""A depthwise blur kernel: the normalised outer product of a binomial row.

    \[
    w_{i,j,c} = \frac{\binom{k-1}{i}\binom{k-1}{j}}{4^{k-1}}
    \]

    for a \(k \times k\) depthwise kernel of shape ``(k, k, channels, 1)``: the
    anti-aliasing filter of Zhang, "Making Convolutional Networks Shift-Invariant Again"
    (2019), which larq-zoo's QuickNet applies before its strided binary convs. It stands
    in for larq-zoo's initializer function in the files bnn_keras writes, so that loading
    them needs bnn_keras only.

    Example:
        ```python
        layer.depthwise_initializer = BinomialBlur()
        ```
    """

    def __call__(self, shape, dtype=None, **kwargs):
        size, channels = int(shape[0]), int(shape[2])
        row = np.array([math.comb(size - 1, i) for i in range(size)], dtype=np.float64)
        kernel = np.outer(row, row) / row.sum() ** 2
        kernel = np.repeat(kernel[:, :, None], channels, axis=-1).reshape(shape)
        return tf.constant(kernel, dtype=dtype or keras.backend.floatx())

    def get_config(self) -> dict:
        return {}
