"""ReActNet's learnable shifts and activations: ``LearnableBias`` (RSign's shift), ``RPReLU``."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from bnn_keras.fusion import HALF_DTYPES, fuse_forward, fused, unrounded


@fused
def _shift_forward(x, scale, bias, rounded=unrounded):
    return rounded(x * scale) + bias


def scaled_shift(x: tf.Tensor, scale: float, bias: tf.Tensor, *, fuse: bool = False
                 ) -> tf.Tensor:
    r"""``scale * x + bias`` (``bias`` per channel, last axis), as two ops, or, with
    ``fuse`` and a 16-bit ``x``, as one XLA loop (:mod:`bnn_keras.fusion`) with the same
    values and the gradients autodiff gives the two ops: \(\partial L / \partial x =
    \beta g\) (\(\beta\) = ``scale``), \(\partial L / \partial b = \sum g\) over every
    axis but the last.

    A float32 ``x`` keeps the two ops: XLA would contract them into one fused
    multiply-add, rounded once instead of twice. (16-bit ops run slowest in TensorFlow's
    kernels, so they are the ones worth fusing.)
    """
    if not (fuse and x.dtype in HALF_DTYPES):
        return x * scale + bias
    axes = list(range(len(x.shape) - 1))
    scale_t = tf.constant(scale, x.dtype)  # what `x * scale` multiplies by

    @tf.custom_gradient
    def forward(x, bias):
        def grad(dy):
            return dy * scale_t, tf.reduce_sum(dy, axes)
        return _shift_forward(x, scale_t, bias), grad

    return forward(x, tf.convert_to_tensor(bias))


@keras.utils.register_keras_serializable(package="bnn_keras")
class LearnableBias(keras.layers.Layer):
    r"""A learnable per-channel shift, optionally after a fixed scale.

    \[
    y = \beta x + b
    \]

    ``b`` has one value per channel (last axis), initialised to 0. Placed before every
    sign it is ReActNet's RSign: \(\mathrm{sign}(x + b)\) learns its own threshold.
    ``scale`` (\(\beta\), default 1) is the BN-free nets' input down-scaling. Because
    \(\mathrm{sign}(\beta x + b) = \mathrm{sign}(x + b/\beta)\) for \(\beta > 0\), the
    export step folds \(\beta\) into the bias when this layer feeds a binarizer
    (:func:`bnn_keras.export.fold_scales`), so no float multiply is deployed. With a
    scale the forward is one XLA loop where :func:`~bnn_keras.fusion.fuse_forward`
    allows (:func:`scaled_shift`).

    Example:
        ```python
        y = lq.layers.QuantConv2D(64, 3, input_quantizer="bnn_keras>ApproxSign", ...)(
            LearnableBias()(x))
        ```
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        if self.scale <= 0:
            raise ValueError(f"LearnableBias scale must be > 0, got {scale}")

    def build(self, input_shape):
        self.bias = self.add_weight(
            name="bias", shape=(int(input_shape[-1]),), initializer="zeros", trainable=True
        )
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training=None) -> tf.Tensor:
        if self.scale == 1.0:
            return inputs + self.bias
        return scaled_shift(inputs, self.scale, self.bias, fuse=fuse_forward(training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}


@fused
def _rprelu_forward(x, bias_in, alpha, bias_out, rounded=unrounded):
    s = rounded(x - bias_in)
    pos = tf.nn.relu(s)
    return rounded(pos + rounded(alpha * (s - pos))) + bias_out


@fused
def _rprelu_backward(x, bias_in, alpha, dy, rounded=unrounded):
    """``dL/ds`` and ``dy * min(s, 0)``, the two activation-sized terms of the backward."""
    s = rounded(x - bias_in)
    return tf.where(s > 0, dy, rounded(alpha * dy)), dy * tf.minimum(s, 0)


def rprelu(x: tf.Tensor, bias_in: tf.Tensor, alpha: tf.Tensor,
           bias_out: tf.Tensor, *, fuse: bool = False) -> tf.Tensor:
    r"""ReActNet's RPReLU with per-channel (last axis) ``bias_in`` \(\gamma\), ``alpha``
    \(a\) and ``bias_out`` \(\zeta\):

    \[
    s = x - \gamma, \qquad y = \max(s, 0) + a \min(s, 0) + \zeta
    \]
    \[
    \frac{\partial L}{\partial s} = \begin{cases} g & s > 0 \\ a g & s \le 0 \end{cases},
    \quad \frac{\partial L}{\partial a} = \textstyle\sum g \min(s, 0), \quad
    \frac{\partial L}{\partial \gamma} = -\sum \frac{\partial L}{\partial s}, \quad
    \frac{\partial L}{\partial \zeta} = \sum g
    \]

    (sums over every axis but the last). Values and gradients are those of PyTorch's
    ``PReLU`` between the two shifts, bit for bit (``min(s, 0)`` is ``s - max(s, 0)``,
    exact). The backward is written out (autodiff of the two-ReLU form costs three more
    activation-sized passes) and its element-wise part is one XLA loop
    (:mod:`bnn_keras.fusion`), as is the forward with ``fuse``; the sums stay
    TensorFlow reductions.
    """
    axes = list(range(len(x.shape) - 1))
    # read here (a mixed policy's variables in their compute dtype): tensors, not
    # variables the custom gradient would have to differentiate
    bias_in, alpha, bias_out = (tf.convert_to_tensor(v) for v in (bias_in, alpha, bias_out))

    @tf.custom_gradient
    def forward(x, bias_in, alpha, bias_out):
        def grad(dy):
            ds, dy_neg = _rprelu_backward(x, bias_in, alpha, dy)
            return (ds, -tf.reduce_sum(ds, axes), tf.reduce_sum(dy_neg, axes),
                    tf.reduce_sum(dy, axes))

        if fuse:
            return _rprelu_forward(x, bias_in, alpha, bias_out), grad
        return _rprelu_forward.chain(x, bias_in, alpha, bias_out), grad

    return forward(x, bias_in, alpha, bias_out)


@keras.utils.register_keras_serializable(package="bnn_keras")
class RPReLU(keras.layers.Layer):
    r"""ReActNet's RPReLU: shift, per-channel PReLU, shift.

    \[
    y = \begin{cases} x - \gamma + \zeta & x \ge \gamma \\
                      a (x - \gamma) + \zeta & x < \gamma \end{cases}
    \]

    \(\gamma\) (``bias_in``), \(a\) (``alpha``, initialised to 0.25) and \(\zeta\)
    (``bias_out``) are per channel and shared over the spatial axes. Deployed as a
    ``SUB`` and one ``PRELU`` op, its output shift folded into the layers after it
    (:func:`bnn_keras.export.plan_shifts`).

    Example:
        ```python
        y = RPReLU()(keras.layers.Add()([branch, shortcut]))
        ```
    """

    def __init__(self, alpha_initializer: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = float(alpha_initializer)

    def build(self, input_shape):
        channels = (int(input_shape[-1]),)
        self.bias_in = self.add_weight(name="bias_in", shape=channels, initializer="zeros")
        self.alpha = self.add_weight(
            name="alpha", shape=channels,
            initializer=keras.initializers.Constant(self.alpha_initializer),
        )
        self.bias_out = self.add_weight(name="bias_out", shape=channels, initializer="zeros")
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training=None) -> tf.Tensor:
        # with alpha of shape (C,) TFLite does not fuse this into a PRELU; the export
        # copy's DeployRPReLU broadcasts alpha over (1, 1, C), which it fuses
        return rprelu(inputs, self.bias_in, self.alpha, self.bias_out,
                      fuse=fuse_forward(training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha_initializer": self.alpha_initializer}
