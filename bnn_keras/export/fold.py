"""Graph rewrites applied before conversion so the deployed graph stays binary."""

from __future__ import annotations

import tf_keras as keras

from bnn_keras.layers import LearnableBias


def is_binarizing(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` binarises its input (a larq layer with a 1-bit input quantizer)."""
    quantizer = getattr(layer, "input_quantizer", None)
    return quantizer is not None and getattr(quantizer, "precision", None) == 1


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


def fold_scales(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with each foldable ``LearnableBias`` rewritten from
    ``sign(beta * x + b)`` to ``sign(x + b / beta)``: same binary outputs, no float
    multiply. Returns ``model`` itself when there is nothing to fold."""
    targets = {layer.name: layer for layer in foldable_biases(model)}
    if not targets:
        return model

    def clone(layer):
        config = layer.get_config()
        if layer.name in targets:
            config["scale"] = 1.0
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone)
    for src, dst in zip(model.layers, folded.layers):
        weights = src.get_weights()
        if src.name in targets:
            weights = [w / src.scale for w in weights]
        dst.set_weights(weights)
    return folded
