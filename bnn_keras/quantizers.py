"""Weight quantizers for weight-standardised binary convolutions.

All functions work on kernels in Keras layout ``(kh, kw, in, out)``: statistics are taken
per output channel, over every axis but the last.
"""

from __future__ import annotations

import larq as lq
import tensorflow as tf
import tf_keras as keras

from bnn_keras.fusion import fused, unrounded


def is_one_bit(quantizer) -> bool:
    """Whether ``quantizer`` (a larq quantizer, or ``None``) gives 1-bit values."""
    return quantizer is not None and getattr(quantizer, "precision", None) == 1


def is_binarizing(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` binarises its input (a larq layer with a 1-bit input quantizer)."""
    return is_one_bit(getattr(layer, "input_quantizer", None))


def has_binary_kernel(layer: keras.layers.Layer) -> bool:
    """Whether ``layer``'s kernel is binary (a larq layer with a 1-bit kernel quantizer),
    whatever its inputs."""
    return is_one_bit(getattr(layer, "kernel_quantizer", None))


def standardize_kernel(kernel: tf.Tensor, eps: float = 1e-5) -> tf.Tensor:
    r"""Scaled weight standardisation (Brock et al. 2021), per output channel.

    \[
    \hat W = \frac{W - \mu}{(\sigma + \epsilon)\sqrt{N}}
    \]

    with \(\mu\) and the population standard deviation \(\sigma\) taken over
    ``(kh, kw, in)`` and \(N = kh \cdot kw \cdot in\) the fan-in. Each output filter of
    \(\hat W\) then has zero mean and squared norm close to 1, so a conv of unit-variance
    inputs gives unit-variance outputs.
    """
    axes = list(range(len(kernel.shape) - 1))
    fan_in = 1
    for dim in kernel.shape[:-1]:
        fan_in *= int(dim)
    mean = tf.reduce_mean(kernel, axis=axes, keepdims=True)
    std = tf.math.reduce_std(kernel, axis=axes, keepdims=True)
    return (kernel - mean) / (std + eps) / tf.sqrt(tf.cast(fan_in, kernel.dtype))


def scaled_sign(w: tf.Tensor) -> tf.Tensor:
    r"""Binarise per output channel with a magnitude and a clipped straight-through gradient
    (the official ReActNet / Bi-Real Net / BNN_NoBN ``HardBinaryConv``).

    \[
    q(W) = s \cdot \mathrm{sign}(W), \quad s = \mathrm{mean}(|W|)
    \text{ per output channel (gradient stopped)}, \qquad
    \frac{\partial q}{\partial W} = 1_{|W| \le 1}
    \]

    The official code writes it as ``(s sign(w)).detach() - clamp(w).detach() + clamp(w)``:
    the gradient is that of ``clamp(w, -1, 1)``, not multiplied by ``s`` (larq's
    ``magnitude_aware_sign`` multiplies it), and the forward is exactly ``+-s`` (which LCE
    needs to see a binary kernel). ``sign(0) = +1`` as in larq (PyTorch's is 0).
    """
    axes = list(range(len(w.shape) - 1))

    @tf.custom_gradient
    def quantize(w):
        scale = tf.reduce_mean(tf.abs(w), axis=axes, keepdims=True)

        def grad(upstream):
            return upstream * tf.cast(tf.abs(w) <= 1.0, upstream.dtype)

        return scale * lq.math.sign(w), grad

    return quantize(w)


def approx_sign(x: tf.Tensor) -> tf.Tensor:
    r"""Binarise activations with ReActNet's / Bi-Real Net's piecewise-polynomial gradient.

    \[
    q(x) = \mathrm{sign}(x), \qquad
    \frac{\partial q}{\partial x} = \max(0,\ 2 - 2|x|)
    \]

    The same values as larq's ``approx_sign`` (``2 (1 - |x|)`` where ``|x| <= 1``, else 0:
    the official ``BinaryActivation``) bit for bit, as a clamp instead of a mask and a
    select, in one XLA loop (:mod:`bnn_keras.fusion`) instead of one pass over the
    activations per op. The forward is larq's ``sign`` (``sign(0) = +1``), the pattern
    LCE lowers to ``LceQuantize``.
    """

    @tf.custom_gradient
    def binarize(x):
        return lq.math.sign(x), lambda dy: _approx_sign_grad(x, dy)

    return binarize(x)


@fused
def _approx_sign_grad(x, dy, rounded=unrounded):
    return dy * tf.nn.relu(rounded(2.0 - rounded(2.0 * tf.abs(x))))


@keras.utils.register_keras_serializable(package="bnn_keras")
class ApproxSign(lq.quantizers.ApproxSign):
    """Input quantizer :func:`approx_sign` (larq's ``ApproxSign``, same config and
    metrics, with the cheaper gradient): the default of every binary conv here.

    Example:
        ```python
        conv = lq.layers.QuantConv2D(64, 3, input_quantizer=ApproxSign(),
                                     kernel_quantizer=ScaledSign(), use_bias=False)
        ```
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        # larq's base call after the sign (its flip-ratio metric), not larq's sign
        return super(lq.quantizers.ApproxSign, self).call(approx_sign(inputs))


@keras.utils.register_keras_serializable(package="bnn_keras")
class ScaledSign(lq.quantizers.Quantizer):
    r"""Kernel quantizer :func:`scaled_sign`: ``mean|W| * sign(W)`` per output channel with
    the official clipped straight-through gradient.

    Example:
        ```python
        conv = lq.layers.QuantConv2D(64, 3, kernel_quantizer=ScaledSign(),
                                     input_quantizer=ApproxSign(), use_bias=False)
        ```
    """

    precision = 1

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return scaled_sign(inputs)


#: BNext's weights are binary once the temperature is under this (``HardBinaryConv``)
BINARY_TEMPERATURE = 1e-7


def temperature_sign(w: tf.Tensor, temperature: tf.Tensor) -> tf.Tensor:
    r"""BNext's progressive weight binarisation, with an identity straight-through gradient.

    \[
    q(W) = \begin{cases} \mathrm{sign}(W) & T < 10^{-7} \\
    \mathrm{clip}(W / \max(T, 10^{-8}), -1, 1) & \text{otherwise} \end{cases}, \qquad
    \frac{\partial q}{\partial W} = 1
    \]

    (BNext ``src/bnext.py`` ``HardBinaryConv``; the training script multiplies ``T`` by 0.9
    after every epoch, so the weights turn binary after about 150 epochs.)
    """

    w = tf.convert_to_tensor(w)
    t = tf.cast(tf.convert_to_tensor(temperature), w.dtype)  # read here: a tensor, not
    # a variable the custom gradient would have to differentiate

    @tf.custom_gradient
    def quantize(w):
        soft = tf.clip_by_value(w / tf.maximum(t, 1e-8), -1.0, 1.0)
        return tf.where(t < BINARY_TEMPERATURE, lq.math.sign(w), soft), lambda g: g

    return quantize(w)


@keras.utils.register_keras_serializable(package="bnn_keras")
class TemperatureSign(lq.quantizers.Quantizer):
    """Kernel quantizer :func:`temperature_sign` holding its temperature ``T`` as a
    non-trainable variable (saved with the layer's weights, set by
    :class:`bnn_keras.training.callbacks.TemperatureSchedule`, imported from a BNext
    checkpoint's ``temperature`` buffer).

    Example:
        ```python
        conv = lq.layers.QuantConv2D(64, 3, kernel_quantizer=TemperatureSign(1.0),
                                     input_quantizer=lq.quantizers.SteSign(1.5))
        ```
    """

    precision = 1

    def __init__(self, temperature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_temperature = float(temperature)
        self.temperature = tf.Variable(self.initial_temperature, trainable=False,
                                       dtype=tf.float32, name="temperature")

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return temperature_sign(inputs, self.temperature)

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.initial_temperature}


def standardized_sign(w: tf.Tensor, eps: float = 1e-5) -> tf.Tensor:
    r"""``scaled_sign(standardize_kernel(w, eps))`` in one op that keeps no kernel-sized
    intermediate for the backward pass.

    Forward, exactly \(s \cdot \mathrm{sign}(\hat W)\): one magnitude per output channel.
    Backward, the gradient of the composition, recomputed from \(W\): with
    \(c = W - \mu\), \(d = (\sigma + \epsilon)\sqrt{N}\) and
    \(G = \partial L / \partial q\) (straight through: each channel of \(\hat W\) has
    \(\sum \hat W^2 = \sigma^2 / (\sigma + \epsilon)^2 < 1\), so \(|\hat W| < 1\) and
    the clip of :func:`scaled_sign` never binds),

    \[
    \frac{\partial L}{\partial W} = \frac{G - \bar G}{d}
      - c \, \frac{\sum G c}{d^2 \sqrt{N} \sigma}
    \]

    (sums and means per output channel; the second term is the path through \(\sigma\)).
    Autodiff of the composition keeps its kernel-sized intermediates until the backward
    pass; this keeps none but the output.
    """
    axes = list(range(len(w.shape) - 1))
    fan_in = 1
    for dim in w.shape[:-1]:
        fan_in *= int(dim)
    root_n = tf.sqrt(tf.cast(fan_in, w.dtype))

    @tf.custom_gradient
    def standardized_sign_op(w):
        mean = tf.reduce_mean(w, axis=axes, keepdims=True)
        std = tf.math.reduce_std(w, axis=axes, keepdims=True)
        denom = (std + eps) * root_n
        w_hat = (w - mean) / denom
        out = tf.reduce_mean(tf.abs(w_hat), axis=axes, keepdims=True) * lq.math.sign(w_hat)
        del w_hat  # not captured: the gradient recomputes it

        def grad(upstream):
            centred = w - mean
            proj = tf.reduce_sum(upstream * centred, axis=axes, keepdims=True)
            through_std = tf.math.divide_no_nan(proj, denom * denom * root_n * std)
            return (upstream - tf.reduce_mean(upstream, axis=axes, keepdims=True)) / denom - (
                centred * through_std)

        return out, grad

    return standardized_sign_op(w)


@keras.utils.register_keras_serializable(package="bnn_keras")
class StandardizedSign(lq.quantizers.Quantizer):
    r"""Kernel quantizer: scaled weight standardisation, then a per-channel scaled sign.

    \[
    q(W) = s \cdot \mathrm{sign}(\hat W), \quad
    \hat W = \frac{W - \mu}{(\sigma + \epsilon)\sqrt{N}}, \quad s = \mathrm{mean}|\hat W|
    \]

    Straight-through gradient: identity for \(|\hat W| \le 1\), then back through the
    standardisation (:func:`standardized_sign`, which keeps no kernel-sized tensor for
    the backward pass). Marked ``precision = 1`` so larq's summary and LCE treat the kernel
    as binary (LCE folds ``s`` into the output multiplier of ``LceBconv2d``).

    Example:
        ```python
        conv = lq.layers.QuantConv2D(
            64, 3, kernel_quantizer=StandardizedSign(), input_quantizer=ApproxSign(),
            pad_values=1.0, padding="same", use_bias=False)
        ```
    """

    precision = 1

    def __init__(self, eps: float = 1e-5, **kwargs):
        self.eps = eps
        super().__init__(**kwargs)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return standardized_sign(inputs, self.eps)

    def get_config(self) -> dict:
        return {**super().get_config(), "eps": self.eps}


@keras.utils.register_keras_serializable(package="bnn_keras")
class StandardizedKernel(StandardizedSign):
    r"""Two-step training's first stage: \(q(W) = \hat W\), the standardisation of
    :class:`StandardizedSign` without the sign; saved, the stage-1 network reloads as
    trained (a quantizer set on the kernel variable alone is not saved)."""

    precision = 32

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return standardize_kernel(inputs, self.eps)
