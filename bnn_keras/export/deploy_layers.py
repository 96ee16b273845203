"""The layers the export copy is built from (:func:`~bnn_keras.export.fold_scales`): a
WS binary conv as a +-1 kernel with one magnitude per channel, and a zero-padded binary
conv on an input smaller than its kernel as one unpadded conv over its whole input."""

from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf
import tf_keras as keras

from bnn_keras.quantizers import is_binarizing


@keras.utils.register_keras_serializable(package="bnn_keras")
class SignKernelConv2D(lq.layers.QuantConv2D):
    r"""What a :class:`~bnn_keras.layers.ScaledStdQuantConv2D` deploys as: a larq
    ``QuantConv2D`` with a +-1 kernel and a per-output-channel ``channel_scale``
    \(m = c \cdot g \cdot s\) multiplied after the convolution (before the bias):

    \[ y = m \odot \mathrm{conv}(\mathrm{sign}(x), \mathrm{sign}(\hat W)) + b \]

    the same output as convolving with \(m \cdot \mathrm{sign}(\hat W)\). LCE lowers the
    conv to ``LceBconv2d`` and fuses the multiply into its output multiplier, as it does a
    batch norm's. Given the scaled kernel instead, the converter would divide every
    weight by its channel's magnitude, a large share of a wide net's conversion time.

    Example:
        ```python
        folded = fold_scales(model)  # each ScaledStdQuantConv2D is now one of these
        flatbuffer = lce.convert_keras_model(folded)
        ```
    """

    def build(self, input_shape):
        super().build(input_shape)
        self.channel_scale = self.add_weight(name="channel_scale", shape=(self.filters,),
                                             initializer="ones", trainable=False)

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel) * self.channel_scale


class _WholeInput:
    """A conv whose kernel covers its whole input, one output position per group of
    ``filters / positions`` output channels, reshaped to ``output_grid``."""

    def __init__(self, *args, output_grid: tuple[int, int] = (1, 1), **kwargs):
        self.output_grid = tuple(int(d) for d in output_grid)
        super().__init__(*args, **kwargs)

    def call(self, inputs):
        y = super().call(inputs)  # (batch, 1, 1, positions * channels)
        return tf.reshape(y, (-1, *self.output_grid,
                              self.filters // int(np.prod(self.output_grid))))

    def get_config(self) -> dict:
        return {**super().get_config(), "output_grid": self.output_grid}


@keras.utils.register_keras_serializable(package="bnn_keras")
class WholeInputConv2D(_WholeInput, lq.layers.QuantConv2D):
    r"""A zero-padded "same" binary conv on an input smaller than its kernel, as one
    unpadded conv that LCE computes exactly.

    Each output position \(p\) of the original conv sees the whole input through its own
    window of the kernel \(W\) (the taps that fall on padding multiply zeros), so the
    layer convolves the whole input, without padding, with those windows stacked as
    output channels, then reshapes the positions back onto the output grid:

    \[ y_{p,c} = \sum_{u} W_{u + o_p,\,c}\, s_u \]

    (\(o_p\) the window offset of position \(p\)). Why: LCE 0.16 corrects zero padding
    itself, but its correction assumes the input is at least as large as the kernel
    (``core/bconv2d/padding_functor.h``); on the 1x1 and 2x2 maps that CIFAR-sized inputs
    reach, a 3x3 zero-padded ``LceBconv2d`` is wrong. Built by
    :func:`~bnn_keras.export.fold_scales`."""


@keras.utils.register_keras_serializable(package="bnn_keras")
class WholeInputSignKernelConv2D(_WholeInput, SignKernelConv2D):
    """:class:`WholeInputConv2D` for a :class:`SignKernelConv2D` (BN-free nets)."""


def _windows(layer: keras.layers.Layer) -> list[tuple[int, int]] | None:
    """For each output position (row-major) of a "same" conv on an input smaller than its
    kernel, the kernel offset of the window that covers the whole input; ``None`` when
    some window does not cover all of it."""
    (height, width), (k_h, k_w) = (int(d) for d in layer.input_shape[1:3]), layer.kernel_size
    (s_h, s_w), (o_h, o_w) = layer.strides, (int(d) for d in layer.output_shape[1:3])
    top = max((o_h - 1) * s_h + k_h - height, 0) // 2
    left = max((o_w - 1) * s_w + k_w - width, 0) // 2
    offsets = [(top - i * s_h, left - j * s_w) for i in range(o_h) for j in range(o_w)]
    if all(0 <= r and r + height <= k_h and 0 <= c and c + width <= k_w for r, c in offsets):
        return offsets
    return None


def needs_whole_input(layer: keras.layers.Layer) -> bool:
    """A zero-padded "same" binary conv on an input smaller than its kernel, whose every
    output window covers the whole input (see :class:`WholeInputConv2D`)."""
    if not (isinstance(layer, lq.layers.QuantConv2D) and is_binarizing(layer)
            and layer.padding == "same" and getattr(layer, "pad_values", 0.0) == 0.0
            and layer.dilation_rate == (1, 1)):
        return False
    height, width = (int(d) for d in layer.input_shape[1:3])
    small = height < layer.kernel_size[0] or width < layer.kernel_size[1]
    return small and _windows(layer) is not None


def whole_input_weights(layer: keras.layers.Layer, weights: list[np.ndarray]
                         ) -> list[np.ndarray]:
    """``weights`` (kernel first, then per-output-channel vectors) of ``layer`` for its
    :class:`WholeInputConv2D`: one kernel window per output position, each vector tiled
    (scalars, such as a BNext quantizer's temperature, stay as they are)."""
    height, width = (int(d) for d in layer.input_shape[1:3])
    kernel, *vectors = weights
    windows = [kernel[r:r + height, c:c + width] for r, c in _windows(layer)]
    tiled = [np.tile(v, len(windows)) if np.ndim(v) else v for v in vectors]
    return [np.concatenate(windows, axis=-1), *tiled]
