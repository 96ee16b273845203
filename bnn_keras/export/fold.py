"""Graph rewrites applied before conversion so the deployed graph stays binary."""

from __future__ import annotations

import larq as lq
import tf_keras as keras

from bnn_keras.layers import LearnableBias, ScaledStdQuantConv2D
from bnn_keras.quantizers import is_binarizing


def binary_conv_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Layers LCE should lower to ``LceBconv2d``: convs with 1-bit inputs and kernels."""
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
    batch norm's. Given the scaled kernel instead, the converter divides every weight by
    its channel's magnitude: for bnext_large ``bf`` (1.2 GB of weights) LCE's converter
    took 119 s that way, 61 s this way.

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


def fold_scales(model: keras.Model) -> keras.Model:
    """A copy of ``model`` rewritten for LCE; ``model`` itself when there is nothing to do.

    - Each foldable ``LearnableBias`` (:func:`foldable_biases`) goes from
      ``sign(beta * x + b)`` to ``sign(x + b / beta)``: same binary outputs, no float
      multiply in front of the binarizer.
    - Each :class:`~bnn_keras.layers.ScaledStdQuantConv2D` becomes a
      :class:`SignKernelConv2D`: its deployed kernel ``c * g * s * sign(W_hat)``
      (:meth:`~bnn_keras.layers.ScaledStdQuantConv2D.binary_kernel_factors`) as the
      exact +-1 signs and one magnitude per output channel, with no standardisation ops
      left for the converter. Computed in the graph by the earlier straight-through
      quantizer, the kernel differed from +-s in the last bit of a few values, and LCE
      kept the conv in float (one of bnext_small ``bf``'s 31 binary convs did).
    """
    targets = {layer.name: layer for layer in foldable_biases(model)}
    ws_convs = {layer.name for layer in model.layers if isinstance(layer, ScaledStdQuantConv2D)}
    if not targets and not ws_convs:
        return model

    def clone(layer):
        # every weight is overwritten below, so skip the random initialisers (bnext_large
        # bf: 1.2 GB of truncated normals; the copy took 21-24 s, now 16-21 s)
        config = {k: "zeros" if k.endswith("_initializer") and isinstance(v, dict)
                  and "class_name" in v else v for k, v in layer.get_config().items()}
        if layer.name in targets:
            config["scale"] = 1.0
        if layer.name in ws_convs:
            for key in ("eps", "output_scale"):
                config.pop(key)
            return SignKernelConv2D.from_config({**config, "kernel_quantizer": None,
                                                 "kernel_constraint": None})
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone)
    for src, dst in zip(model.layers, folded.layers):
        if src.name in ws_convs:
            signs, scale = src.binary_kernel_factors()
            bias = [src.bias.numpy()] if src.use_bias else []
            dst.set_weights([signs.numpy(), *bias, scale.numpy()])
            continue
        weights = src.get_weights()
        if src.name in targets:
            weights = [w / src.scale for w in weights]
        dst.set_weights(weights)
    return folded
