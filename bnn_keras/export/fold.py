"""Graph rewrites applied before conversion so the deployed graph stays binary."""

from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf
import tf_keras as keras

from bnn_keras.export.shifts import DeployRPReLU, ShiftPlan, plan_shifts
from bnn_keras.layers import LearnableBias, ScaledStdQuantConv2D
from bnn_keras.quantizers import BINARY_TEMPERATURE, TemperatureSign, is_binarizing


def binary_temperature(layer: keras.layers.Layer) -> bool:
    """Whether ``layer``'s kernel quantizer is a :class:`TemperatureSign` whose temperature
    has decayed below :data:`BINARY_TEMPERATURE`: its kernel is exactly ``sign(W)``."""
    quantizer = getattr(layer, "kernel_quantizer", None)
    return (isinstance(quantizer, TemperatureSign)
            and float(quantizer.temperature.numpy()) < BINARY_TEMPERATURE)


def binary_conv_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Layers LCE should lower to ``LceBconv2d``: convs with 1-bit inputs and kernels.

    Fewer than :func:`bnn_keras.training.two_step.binary_kernel_layers`, on purpose: that
    also takes the binary-kernel convs on real inputs, which stage 1 keeps real."""
    out = []
    for layer in model.layers:
        kernel_q = getattr(layer, "kernel_quantizer", None)
        if (isinstance(layer, keras.layers.Conv2D) and is_binarizing(layer)
                and getattr(kernel_q, "precision", None) == 1):
            out.append(layer)
    return out


def _consumers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    return [node.outbound_layer for node in layer._outbound_nodes]


def foldable_biases(model: keras.Model) -> list[LearnableBias]:
    """``LearnableBias`` layers with ``scale != 1`` whose every consumer binarises."""
    return [
        layer for layer in model.layers
        if isinstance(layer, LearnableBias) and layer.scale != 1.0
        and _consumers(layer) and all(is_binarizing(c) for c in _consumers(layer))
    ]


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
    reach, a 3x3 zero-padded ``LceBconv2d`` is wrong. Built by :func:`fold_scales`."""


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


def _whole_input_weights(layer: keras.layers.Layer, weights: list[np.ndarray]
                         ) -> list[np.ndarray]:
    """``weights`` (kernel first, then per-output-channel vectors) of ``layer`` for its
    :class:`WholeInputConv2D`: one kernel window per output position, each vector tiled
    (scalars, such as a BNext quantizer's temperature, stay as they are)."""
    height, width = (int(d) for d in layer.input_shape[1:3])
    kernel, *vectors = weights
    windows = [kernel[r:r + height, c:c + width] for r, c in _windows(layer)]
    tiled = [np.tile(v, len(windows)) if np.ndim(v) else v for v in vectors]
    return [np.concatenate(windows, axis=-1), *tiled]


def fold_scales(model: keras.Model, *, fold_biases: bool = True) -> keras.Model:
    """A copy of ``model`` rewritten for LCE; ``model`` itself when there is nothing to do.

    - Each foldable ``LearnableBias`` (:func:`foldable_biases`) goes from
      ``sign(beta * x + b)`` to ``sign(x + b / beta)``: same binary outputs, no float
      multiply in front of the binarizer.
    - Each :class:`~bnn_keras.layers.ScaledStdQuantConv2D` becomes a
      :class:`SignKernelConv2D`: its deployed kernel ``c * g * s * sign(W_hat)``
      (:meth:`~bnn_keras.layers.ScaledStdQuantConv2D.binary_kernel_factors`) as the
      exact +-1 signs and one magnitude per output channel, with no standardisation ops
      left for the converter. Computed in the graph by the earlier straight-through
      quantizer, the kernel can differ from +-s in the last bit of a few values, and LCE
      then keeps the conv in float.
    - Each BNext kernel quantizer whose temperature has decayed
      (:func:`binary_temperature`) becomes ``ste_sign``, the same ``sign(W)`` without the
      ``where`` on the temperature, which the converter does not fold for the large
      kernel of a whole-input conv (below), leaving it in float.
    - Each zero-padded binary conv on an input smaller than its kernel
      (:func:`needs_whole_input`) becomes one unpadded conv over its whole input
      (:class:`WholeInputConv2D`), which LCE computes exactly.
    - With ``fold_biases``, each RPReLU becomes a :class:`DeployRPReLU` (one ``PRELU``)
      whose output shift moved into the layers after it (:func:`plan_shifts`).
    """
    targets = {layer.name: layer for layer in foldable_biases(model)}
    plan = plan_shifts(model) if fold_biases else ShiftPlan()
    ws_convs = {layer.name for layer in model.layers if isinstance(layer, ScaledStdQuantConv2D)}
    whole = {layer.name: layer for layer in model.layers if needs_whole_input(layer)}
    decayed = {layer.name for layer in model.layers if binary_temperature(layer)}
    if not targets and not ws_convs and not whole and not decayed and not plan:
        return model

    def clone(layer):
        # every weight is overwritten below, so skip the random initialisers (drawing
        # them costs time in proportion to the weights)
        config = {k: "zeros" if k.endswith("_initializer") and isinstance(v, dict)
                  and "class_name" in v else v for k, v in layer.get_config().items()}
        if layer.name in targets:
            config["scale"] = 1.0
        if layer.name in plan.rprelus:
            shift_in, shift_out = plan.rprelus[layer.name]
            return DeployRPReLU.from_config({**config, "shift_in": shift_in,
                                             "shift_out": shift_out})
        if layer.name in plan.new_bias:
            config["use_bias"] = True
        if layer.name in decayed:
            config["kernel_quantizer"] = "ste_sign"
        if layer.name in whole:
            grid = tuple(int(d) for d in layer.output_shape[1:3])
            config.update(kernel_size=tuple(int(d) for d in layer.input_shape[1:3]),
                          strides=(1, 1), padding="valid", output_grid=grid,
                          filters=layer.filters * int(np.prod(grid)))
        if layer.name in ws_convs:
            for key in ("eps", "output_scale"):
                config.pop(key)
            cls = WholeInputSignKernelConv2D if layer.name in whole else SignKernelConv2D
            return cls.from_config({**config, "kernel_quantizer": None,
                                    "kernel_constraint": None})
        if layer.name in whole:
            return WholeInputConv2D.from_config(config)
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone)
    for src, dst in zip(model.layers, folded.layers):
        if src.name in ws_convs:
            signs, scale = src.binary_kernel_factors()
            bias = [src.bias.numpy()] if src.use_bias else []
            weights = [signs.numpy(), *bias, scale.numpy()]
        elif src.name in decayed:
            temperature = src.kernel_quantizer.temperature
            weights = [w.numpy() for w in src.weights if w is not temperature]
        else:
            weights = src.get_weights()
        if src.name in plan.new_bias:  # Conv2D and Dense hold the bias second
            weights.insert(1, np.zeros(weights[0].shape[-1], np.float32))
        if src.name in targets:
            weights = [w / src.scale for w in weights]
        if src.name in whole:
            if src.name not in ws_convs:  # the binary kernel itself: a window's mean |w|
                # is not the whole kernel's, so magnitude-aware signs are taken first
                weights[0] = src.kernel_quantizer(src.kernel.latent_variable).numpy()
            weights = _whole_input_weights(src, weights)
        dst.set_weights(weights)
        plan.apply(dst)
    return folded
