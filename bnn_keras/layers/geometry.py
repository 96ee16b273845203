"""``Rotate180``: how a Keras network pads stride-2 layers exactly as PyTorch does."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="bnn_keras")
class Rotate180(keras.layers.Layer):
    r"""Rotate feature maps by 180 degrees in the image plane.

    \[
    y_{b,i,j,c} = x_{b,\,H-1-i,\,W-1-j,\,c}
    \]

    Why: a PyTorch conv or max-pool with kernel \(k\), stride 2 and ``padding=(k-1)//2``
    on an even input takes its extra padding row and column on the top and left;
    TensorFlow's ``"same"`` takes them on the bottom and right. Rotate the input and every
    kernel by 180 degrees and TensorFlow's padding lands where PyTorch's did: each conv
    (any stride, odd kernel), max-pool, 2x2 average pool on even sizes and per-channel
    operation then computes the PyTorch network's feature map, rotated. A global average
    pool is rotation-invariant, so the logits are the PyTorch network's exactly, with no
    padding op in the graph (LCE keeps every binary conv a plain ``LceBconv2d``). The
    import of a PyTorch checkpoint rotates the kernels
    (:func:`bnn_keras.models.torch_import.import_state_dict`); a network trained here
    just learns in the rotated frame.

    Example:
        ```python
        x = Rotate180()(keras.Input((224, 224, 3)))   # first layer of a torch-aligned net
        ```
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.reverse(inputs, axis=[1, 2])

    def compute_output_shape(self, input_shape):
        return input_shape
