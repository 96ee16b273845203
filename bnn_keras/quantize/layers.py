"""Quantization-aware versions of the non-binary layers: each computes what its original
computes with int8 fake quantization where the int8 flatbuffer rounds.

Weights: the float convs' and ``Dense`` layers' kernels per output channel
(:func:`~bnn_keras.quantize.ranges.quantize_kernel`). Activations: the outputs get a
:class:`~bnn_keras.quantize.ranges.FakeQuant` layer of their own
(:func:`~bnn_keras.quantize.quantize_model` places them); these layers quantize only the
tensors *inside* them that the flatbuffer holds as tensors of their own (an ``RPReLU``'s
``SUB`` and ``PRELU``, a standalone batch norm's ``MUL``, ...), so that each op lowers to
an int8 kernel. ``QatLearnableBias`` quantizes its output itself: the export folds its
scale into its variables (:func:`bnn_keras.export.fold_scales` divides each of them,
range included, by it).
"""

from __future__ import annotations

import larq as lq
import tensorflow as tf
import tf_keras as keras

from bnn_keras.layers import (
    ChannelGate,
    LearnableBias,
    RecouplingMix,
    RPReLU,
    ScaledStdConv2D,
)
from bnn_keras.quantize.ranges import (
    RangeOwner,
    quantize_kernel,
    resolve_training,
    smart_branch,
)

#: Activations that TFLite fuses into ``FULLY_CONNECTED`` (no tensor of their own).
FUSED_ACTIVATIONS = ("linear", "relu", "relu6")


@keras.utils.register_keras_serializable(package="bnn_keras")
class QatConv2D(keras.layers.Conv2D):
    """``Conv2D`` with its kernel fake-quantized to int8 per output channel."""

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, quantize_kernel(kernel))


@keras.utils.register_keras_serializable(package="bnn_keras")
class QatQuantConv2D(lq.layers.QuantConv2D):
    """larq's ``QuantConv2D`` with float operands (QuickNet's stem), int8 kernel."""

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, quantize_kernel(kernel))


@keras.utils.register_keras_serializable(package="bnn_keras")
class QatScaledStdConv2D(ScaledStdConv2D):
    """:class:`~bnn_keras.layers.ScaledStdConv2D` with its standardised, scaled kernel
    (the one deployed) fake-quantized to int8 per output channel."""

    def _convolve(self, inputs, kernel):
        return super()._convolve(inputs, quantize_kernel(kernel))


@keras.utils.register_keras_serializable(package="bnn_keras")
class QatDense(RangeOwner, keras.layers.Dense):
    """``Dense`` with an int8 kernel (per tensor); an activation TFLite does not fuse (a sigmoid)
    reads the int8 pre-activation."""

    def build(self, input_shape):
        super().build(input_shape)
        if self._separate_activation():
            self.add_range("preactivation")

    def _separate_activation(self) -> bool:
        return keras.activations.serialize(self.activation) not in FUSED_ACTIVATIONS

    def call(self, inputs, training=None):
        x = tf.cast(inputs, self.compute_dtype)
        kernel = tf.cast(quantize_kernel(self.kernel, per_channel=False), x.dtype)
        rank = x.shape.rank
        if rank == 2:
            y = tf.matmul(x, kernel)
        else:
            y = tf.tensordot(x, kernel, [[rank - 1], [0]])
            y.set_shape(x.shape[:-1].concatenate([self.units]))
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
        if self._separate_activation():
            y = self.quantize(y, "preactivation", training)
        return self.activation(y)


@keras.utils.register_keras_serializable(package="bnn_keras")
class QatLearnableBias(RangeOwner, LearnableBias):
    r""":class:`~bnn_keras.layers.LearnableBias` with its output \(\beta x + b\) in int8
    (the ``ADD`` before the binarizer writes int8)."""

    def build(self, input_shape):
        super().build(input_shape)
        self.add_range("output")

    def call(self, inputs, training=None):
        return self.quantize(super().call(inputs, training=training), "output", training)


@keras.utils.register_keras_serializable(package="bnn_keras")
class QatRPReLU(RangeOwner, RPReLU):
    r""":class:`~bnn_keras.layers.RPReLU` as it deploys in int8: ``SUB`` of
    \(\gamma\), one ``PRELU`` and the ``ADD`` of \(\zeta\), the first two outputs
    int8-quantized here (the last by the layer after it). The export keeps every shift in
    place: moved into other layers, it would shift a quantized tensor per channel."""

    def build(self, input_shape):
        super().build(input_shape)
        self.add_range("sub")
        self.add_range("prelu")

    def call(self, inputs, training=None):
        s = self.quantize(inputs - tf.cast(self.bias_in, inputs.dtype), "sub", training)
        # alpha over (1, 1, C): the form the converter fuses into one PRELU
        alpha = tf.reshape(tf.cast(self.alpha, s.dtype), [1] * (s.shape.rank - 2) + [-1])
        p = self.quantize(tf.nn.relu(s) + (-alpha) * tf.nn.relu(-s), "prelu", training)
        return p + tf.cast(self.bias_out, p.dtype)


@keras.utils.register_keras_serializable(package="bnn_keras")
class QatRecouplingMix(RangeOwner, RecouplingMix):
    """:class:`~bnn_keras.layers.RecouplingMix` with its two products in int8 (two
    ``MUL`` and an ``ADD`` in the flatbuffer)."""

    def build(self, input_shape):
        super().build(input_shape)
        self.add_range("input_part")
        self.add_range("branch_part")

    def call(self, inputs, training=None):
        u, x = inputs
        a = self.quantize((self.mix * self.input_scale) * u, "input_part", training)
        b = self.quantize((1.0 - self.mix) * x, "branch_part", training)
        return a + b


@keras.utils.register_keras_serializable(package="bnn_keras")
class QatChannelGate(RangeOwner, ChannelGate):
    """:class:`~bnn_keras.layers.ChannelGate` with the scaled gate in int8."""

    def build(self, input_shape):
        super().build(input_shape)
        if self.scale != 1.0:
            self.add_range("gate")

    def call(self, inputs, training=None):
        x, gate = inputs
        if self.scale != 1.0:
            gate = self.quantize(gate * self.scale, "gate", training)
        return x * gate


@keras.utils.register_keras_serializable(package="bnn_keras")
class QatBatchNormalization(RangeOwner, keras.layers.BatchNormalization):
    r"""A batch norm no conv absorbs (BNext's after its gate): in inference
    \(y = a x + c\) with \(a = \gamma / \sqrt{\sigma^2 + \epsilon}\), the ``MUL``'s output
    in int8; in training the usual batch statistics, while the range of \(a x\) is
    tracked."""

    def build(self, input_shape):
        super().build(input_shape)
        self.add_range("scaled")

    def _affine(self) -> tuple[tf.Tensor, tf.Tensor]:
        a = tf.math.rsqrt(self.moving_variance + self.epsilon)
        if self.scale:
            a = a * self.gamma
        c = -self.moving_mean * a
        if self.center:
            c = c + self.beta
        return a, c

    def call(self, inputs, training=None):
        training = resolve_training(training)
        if not self.trainable:
            training = False

        def train():
            a, _ = self._affine()
            self.quantize(inputs * tf.cast(a, inputs.dtype), "scaled", True)  # tracks only
            return super(QatBatchNormalization, self).call(inputs, training=True)

        def infer():
            a, c = self._affine()
            scaled = self.quantize(inputs * tf.cast(a, inputs.dtype), "scaled", False)
            return scaled + tf.cast(c, scaled.dtype)

        return smart_branch(training, train, infer)
