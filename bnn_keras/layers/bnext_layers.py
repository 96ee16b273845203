"""BNext's Info-Recoupling pieces: the learned input/output mix and the channel gate."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="bnn_keras")
class UnitIntervalClip(keras.constraints.Constraint):
    r"""Constraint clamping every weight into \([0, 1]\) after each optimizer update.

    \[
    w \leftarrow \min(\max(w, 0), 1)
    \]
    """

    def __call__(self, w: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(w, 0.0, 1.0)

    def get_config(self) -> dict:
        return {}


@keras.utils.register_keras_serializable(package="bnn_keras")
class RecouplingMix(keras.layers.Layer):
    r"""BNext's Info-Recoupling mix of a module's input and its binary branch.

    \[
    m = s \cdot c \cdot u + (1 - s) \cdot x
    \]

    ``inputs = [u, x]``: \(u\) the module's (pooled) input, \(x\) the binary branch's
    output, same shape. \(s\) is one trainable value per channel, initialised to
    ``initial_mix`` (0.5 as in the paper) and clamped to \([0, 1]\) after every update;
    \(c\) is a constant (``input_scale``, default 1) with which a BN-free net scales its
    residual stream \(u\) to unit variance without a separate multiply. The mix feeds
    a squeeze-excitation gate that rescales \(x\) (see :class:`ChannelGate`).

    Example:
        ```python
        mix = RecouplingMix()([module_input, branch])
        ```
    """

    def __init__(self, input_scale: float = 1.0, initial_mix: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.input_scale = float(input_scale)
        self.initial_mix = float(initial_mix)
        if not 0.0 <= self.initial_mix <= 1.0:
            raise ValueError(f"initial_mix must be in [0, 1], got {initial_mix}")

    def build(self, input_shape):
        channels = int(input_shape[1][-1])
        if int(input_shape[0][-1]) != channels:
            raise ValueError(f"RecouplingMix inputs differ in channels: {input_shape}")
        self.mix = self.add_weight(
            name="mix", shape=(channels,),
            initializer=keras.initializers.Constant(self.initial_mix),
            constraint=UnitIntervalClip(), trainable=True,
        )
        super().build(input_shape)

    def call(self, inputs):
        u, x = inputs
        return (self.mix * self.input_scale) * u + (1.0 - self.mix) * x

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self) -> dict:
        return {**super().get_config(), "input_scale": self.input_scale,
                "initial_mix": self.initial_mix}


@keras.utils.register_keras_serializable(package="bnn_keras")
class ChannelGate(keras.layers.Layer):
    r"""Multiply a feature map by a per-channel gate and a constant.

    \[
    y = x \cdot (c \cdot g)
    \]

    ``inputs = [x, g]`` with \(x\) of shape ``(B, H, W, C)`` and \(g\) of shape
    ``(B, 1, 1, C)`` (a squeeze-excitation output). The constant \(c\) (``scale``,
    default 1) multiplies the small gate tensor, so a BN-free residual branch's
    \(\alpha\) costs \(C\) multiplies per image instead of \(H W C\).

    Example:
        ```python
        y = ChannelGate(scale=0.2)([branch, se_gate])
        ```
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs):
        x, gate = inputs
        if self.scale != 1.0:
            gate = gate * self.scale
        return x * gate

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}
