"""Weight-standardised convolutions, real-valued and binary (the BN-free building blocks)."""

from __future__ import annotations

import logging

import larq as lq
import tensorflow as tf
import tf_keras as keras

from bnn_keras.layers.conv2d import conv2d
from bnn_keras.quantizers import StandardizedKernel, StandardizedSign, standardize_kernel


class _GainMixin:
    """Adds the per-output-channel ``gain`` (init 1) and a fixed ``output_scale``.

    Under a mixed-precision policy the kernel and the gain are not autocast: the
    standardisation's mean and standard deviation, and the binary kernel's signs, are
    taken from the float32 weights, and only the finished kernel is cast to the layer's
    compute dtype (a weight rounded to bfloat16 first can change sign after centring).
    """

    def add_weight(self, name=None, *args, **kwargs):
        if name in ("kernel", "gain"):
            kwargs.setdefault("experimental_autocast", False)
        return super().add_weight(name, *args, **kwargs)

    def _build_gain(self) -> None:
        self.gain = self.add_weight(
            name="gain", shape=(self.filters,), initializer="ones", trainable=True
        )

    def _channel_scale(self) -> tf.Tensor:
        return self.gain * self.output_scale

    def _convolve(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        """The conv op of :func:`bnn_keras.layers.conv2d.conv2d` (its faster bfloat16
        weight gradient) where it applies, Keras's ``convolution_op`` elsewhere."""
        kernel = tf.cast(kernel, inputs.dtype)
        k, strides = self.kernel_size, self.strides
        plain = (self.rank == 2 and self.data_format == "channels_last" and self.groups == 1
                 and tuple(self.dilation_rate) == (1, 1) and k[0] == k[1]
                 and strides[0] == strides[1] and self.padding in ("same", "valid"))
        if not plain:
            return super().convolution_op(inputs, kernel)
        return conv2d(inputs, kernel, strides[0], self.padding.upper())


@keras.utils.register_keras_serializable(package="bnn_keras")
class ScaledStdConv2D(_GainMixin, keras.layers.Conv2D):
    r"""Real-valued ``Conv2D`` with scaled weight standardisation at every call.

    \[
    \hat W = g \cdot \frac{W - \mu}{(\sigma + \epsilon)\sqrt{N}} \cdot c
    \]

    \(\mu, \sigma\) (population) per output channel over ``(kh, kw, in)``,
    \(N = kh \cdot kw \cdot in\), \(g\) a trainable per-output-channel ``gain``
    initialised to 1, and \(c\) the constant ``output_scale`` (default 1; a residual
    branch's \(\alpha\) or a shortcut's \(\beta\) can be folded in here so no float
    multiply is left in the graph). No bias by default.

    Takes every argument of ``keras.layers.Conv2D``.

    Example:
        ```python
        x = keras.Input((32, 32, 3))
        y = ScaledStdConv2D(64, 3, padding="same")(x)   # unit variance in -> out
        ```
    """

    def __init__(self, filters, kernel_size, *, eps: float = 1e-5, output_scale: float = 1.0,
                 use_bias: bool = False, kernel_initializer="he_normal", **kwargs):
        self.eps = float(eps)
        self.output_scale = float(output_scale)
        super().__init__(filters, kernel_size, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_gain()

    def convolution_op(self, inputs, kernel):
        return self._convolve(inputs, standardize_kernel(kernel, self.eps) * self._channel_scale())

    def get_config(self) -> dict:
        return {**super().get_config(), "eps": self.eps, "output_scale": self.output_scale}


@keras.utils.register_keras_serializable(package="bnn_keras")
class ScaledStdQuantConv2D(_GainMixin, lq.layers.QuantConv2D):
    r"""Binary conv with scaled weight standardisation: larq's ``QuantConv2D`` subclass.

    \[
    W_b = c \cdot g \cdot s \cdot \mathrm{sign}(\hat W), \quad
    \hat W = \frac{W - \mu}{(\sigma + \epsilon)\sqrt{N}}, \quad
    s = \mathrm{mean}|\hat W| \ \text{(per output channel, gradient stopped)}
    \]
    \[
    y = \mathrm{conv}(\mathrm{sign}(x), W_b)
    \]

    The weight gradient is straight-through, the identity for \(|\hat W| \le 1\) and not
    multiplied by \(s\) (see :class:`bnn_keras.quantizers.StandardizedSign`); \(g\) is the
    trainable per-channel ``gain`` (init 1) and \(c\) the constant ``output_scale``.
    Inputs are binarised with ``input_quantizer`` (:class:`~bnn_keras.quantizers.ApproxSign`
    by default) and "same" padding pads with +1 (``pad_values=1.0``) so that LCE lowers
    the layer to ``LceBconv2d`` with \(c \cdot g \cdot s\) folded into its output multiplier.
    ``real_kernel=True`` (two-step training's first stage) keeps \(\hat W\) real-valued:
    binary activations, real weights.

    Example:
        ```python
        x = keras.Input((32, 32, 64))
        y = ScaledStdQuantConv2D(64, 3, padding="same")(LearnableBias()(x))
        ```
    """

    def __init__(self, filters, kernel_size, *, eps: float = 1e-5, output_scale: float = 1.0,
                 input_quantizer="bnn_keras>ApproxSign", pad_values: float = 1.0,
                 use_bias: bool = False, kernel_initializer="he_normal",
                 real_kernel: bool = False, **kwargs):
        self.eps = float(eps)
        self.output_scale = float(output_scale)
        self.real_kernel = bool(real_kernel)
        kwargs.pop("kernel_quantizer", None)  # fixed: it *is* this layer's definition
        larq_log = logging.getLogger("larq.layers_base")
        level = larq_log.level
        larq_log.setLevel(logging.ERROR)  # latent weights are standardised: no clip needed
        try:
            super().__init__(filters, kernel_size, input_quantizer=input_quantizer,
                             kernel_quantizer=StandardizedSign(eps=self.eps),
                             pad_values=pad_values, use_bias=use_bias,
                             kernel_initializer=kernel_initializer, **kwargs)
        finally:
            larq_log.setLevel(level)
        # the signs and their scale from the variables' dtype (float32 under a mixed
        # policy, float64 where floatx is), never from a 16-bit copy
        self.kernel_quantizer = self.make_kernel_quantizer()

    def make_kernel_quantizer(self):
        """:class:`~bnn_keras.quantizers.StandardizedSign`, or with ``real_kernel`` (two-step
        training's first stage) :class:`~bnn_keras.quantizers.StandardizedKernel`."""
        kind = StandardizedKernel if self.real_kernel else StandardizedSign
        return kind(eps=self.eps, dtype=self.dtype_policy.variable_dtype)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_gain()

    def binary_kernel_factors(self) -> tuple[tf.Tensor, tf.Tensor]:
        r"""The deployed kernel \(c \cdot g \cdot s \cdot \mathrm{sign}(\hat W)\) as its two
        factors: the +-1 signs of \(\hat W\) (``sign(0) = +1``, as in larq) and the
        per-output-channel magnitude \(c \cdot g \cdot s\), exactly one per channel
        whatever the quantizer's forward computes (LCE lowers a conv to ``LceBconv2d``
        only when its kernel is exactly +-one value per output channel)."""
        q = self.kernel_quantizer(tf.convert_to_tensor(self.kernel.latent_variable))
        s = tf.reduce_mean(tf.abs(q), axis=[0, 1, 2])
        return lq.math.sign(q), s * self._channel_scale()

    def convolution_op(self, inputs, kernel):
        # `kernel` is already s * sign(W_hat) (larq reads the quantized variable here).
        return self._convolve(inputs, kernel * self._channel_scale())

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("kernel_quantizer", None)
        return {**config, "eps": self.eps, "output_scale": self.output_scale,
                "real_kernel": self.real_kernel}
