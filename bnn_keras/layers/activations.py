"""ReActNet's learnable shifts and activations: ``LearnableBias`` (RSign's shift), ``RPReLU``."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


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
    (:func:`bnn_keras.export.fold_scales`), so no float multiply is deployed.

    Example:
        ```python
        y = lq.layers.QuantConv2D(64, 3, input_quantizer="approx_sign", ...)(
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

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        if self.scale != 1.0:
            inputs = inputs * self.scale
        return inputs + self.bias

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}


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

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        x = inputs - self.bias_in
        # with alpha of shape (C,) TFLite does not fuse this into a PRELU; the export
        # copy's DeployRPReLU broadcasts alpha over (1, 1, C), which it fuses
        y = tf.nn.relu(x) + (-self.alpha) * tf.nn.relu(-x)
        return y + self.bias_out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha_initializer": self.alpha_initializer}
