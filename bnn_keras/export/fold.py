"""Graph rewrites applied before conversion so the deployed graph stays binary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import tf_keras as keras

from bnn_keras.export.deploy_layers import (
    SignKernelConv2D,
    WholeInputConv2D,
    WholeInputSignKernelConv2D,
    needs_whole_input,
    whole_input_weights,
)
from bnn_keras.export.shifts import DeployRPReLU, ShiftPlan, plan_shifts
from bnn_keras.layers import LearnableBias, ScaledStdQuantConv2D
from bnn_keras.quantizers import (
    BINARY_TEMPERATURE,
    TemperatureSign,
    has_binary_kernel,
    is_binarizing,
)


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
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
            and is_binarizing(layer) and has_binary_kernel(layer)]


def _consumers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    return [node.outbound_layer for node in layer._outbound_nodes]


def foldable_biases(model: keras.Model) -> list[LearnableBias]:
    """``LearnableBias`` layers with ``scale != 1`` whose every consumer binarises."""
    return [
        layer for layer in model.layers
        if isinstance(layer, LearnableBias) and layer.scale != 1.0
        and _consumers(layer) and all(is_binarizing(c) for c in _consumers(layer))
    ]


Weights = list[np.ndarray]


@dataclass
class _Rebuild:
    """How one layer of the export copy is built: its class and config, and how its
    weights come from the source layer's (computed after cloning, a layer at a time, so
    no second copy of every weight is held at once)."""

    cls: type
    config: dict
    source_weights: Callable[[], Weights]
    steps: list[Callable[[Weights], Weights]] = field(default_factory=list)

    @classmethod
    def of(cls, layer: keras.layers.Layer) -> _Rebuild:
        # every weight is overwritten, so skip the random initialisers (drawing them
        # costs time in proportion to the weights)
        config = {k: "zeros" if k.endswith("_initializer") and isinstance(v, dict)
                  and "class_name" in v else v for k, v in layer.get_config().items()}
        return cls(layer.__class__, config, layer.get_weights)

    def weights(self) -> Weights:
        weights = self.source_weights()
        for step in self.steps:
            weights = step(weights)
        return weights


Rewrite = Callable[[keras.layers.Layer, _Rebuild], None]


def _deploy_rprelu(layer: keras.layers.Layer, spec: _Rebuild, plan: ShiftPlan) -> None:
    """An RPReLU whose output shift moves into the layers after it: one ``PRELU``."""
    shift_in, shift_out = plan.rprelus[layer.name]
    spec.cls = DeployRPReLU
    spec.config.update(shift_in=shift_in, shift_out=shift_out)


def _sign_kernel(layer: ScaledStdQuantConv2D, spec: _Rebuild) -> None:
    """A WS binary conv as a :class:`SignKernelConv2D`: the exact +-1 signs of its
    deployed kernel and one magnitude per output channel, no standardisation ops."""
    for key in ("eps", "output_scale", "real_kernel"):  # real_kernel: False, binary here
        spec.config.pop(key)
    spec.config.update(kernel_quantizer=None, kernel_constraint=None)
    spec.cls = SignKernelConv2D

    def weights() -> Weights:
        signs, scale = layer.binary_kernel_factors()
        bias = [layer.bias.numpy()] if layer.use_bias else []
        return [signs.numpy(), *bias, scale.numpy()]

    spec.source_weights = weights


def _plain_sign(layer: keras.layers.Layer, spec: _Rebuild) -> None:
    """A decayed BNext kernel quantizer as ``ste_sign``: the same ``sign(W)``, without
    the temperature (and its ``where``, which the converter does not fold for the large
    kernel of a whole-input conv)."""
    temperature = layer.kernel_quantizer.temperature
    spec.config["kernel_quantizer"] = "ste_sign"
    spec.source_weights = lambda: [w.numpy() for w in layer.weights if w is not temperature]


def _add_bias(layer: keras.layers.Layer, spec: _Rebuild) -> None:
    """A conv or ``Dense`` that takes an RPReLU's shift gets a zero bias to take it in."""
    spec.config["use_bias"] = True
    # Conv2D and Dense hold the bias second
    spec.steps.append(lambda w: [w[0], np.zeros(w[0].shape[-1], np.float32), *w[1:]])


def _unscale_bias(layer: LearnableBias, spec: _Rebuild) -> None:
    """``sign(beta * x + b)`` as ``sign(x + b / beta)``: no float multiply before the
    binarizer."""
    spec.config["scale"] = 1.0
    spec.steps.append(lambda w: [v / layer.scale for v in w])


def _whole_input(layer: keras.layers.Layer, spec: _Rebuild) -> None:
    """A zero-padded binary conv on an input smaller than its kernel as one unpadded conv
    over its whole input (:class:`WholeInputConv2D`)."""
    grid = tuple(int(d) for d in layer.output_shape[1:3])
    spec.config.update(kernel_size=tuple(int(d) for d in layer.input_shape[1:3]),
                       strides=(1, 1), padding="valid", output_grid=grid,
                       filters=layer.filters * int(np.prod(grid)))
    signed = spec.cls is SignKernelConv2D
    spec.cls = WholeInputSignKernelConv2D if signed else WholeInputConv2D

    def windows(weights: Weights) -> Weights:
        if not signed:  # the binary kernel itself: a window's mean |w| is not the whole
            # kernel's, so magnitude-aware signs are taken first
            weights[0] = layer.kernel_quantizer(layer.kernel.latent_variable).numpy()
        return whole_input_weights(layer, weights)

    spec.steps.append(windows)


def _rewrites(model: keras.Model, plan: ShiftPlan) -> dict[str, list[Rewrite]]:
    """Each layer's rewrites, in the order they apply."""
    chosen: list[tuple[set[str], Rewrite]] = [
        (set(plan.rprelus), partial(_deploy_rprelu, plan=plan)),
        ({lay.name for lay in model.layers if isinstance(lay, ScaledStdQuantConv2D)},
         _sign_kernel),
        ({lay.name for lay in model.layers if binary_temperature(lay)}, _plain_sign),
        (plan.new_bias, _add_bias),
        ({lay.name for lay in foldable_biases(model)}, _unscale_bias),
        ({lay.name for lay in model.layers if needs_whole_input(lay)}, _whole_input),
    ]
    table: dict[str, list[Rewrite]] = {}
    for names, rewrite in chosen:
        for name in names:
            table.setdefault(name, []).append(rewrite)
    return table


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

    Each is one function of this module, applied in :func:`_rewrites`' order.
    """
    plan = plan_shifts(model) if fold_biases else ShiftPlan()
    table = _rewrites(model, plan)
    if not table:
        return model
    specs: dict[str, _Rebuild] = {}

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        spec = specs[layer.name] = _Rebuild.of(layer)
        for rewrite in table.get(layer.name, ()):
            rewrite(layer, spec)
        return spec.cls.from_config(spec.config)

    folded = keras.models.clone_model(model, clone_function=clone)
    for src, dst in zip(model.layers, folded.layers):
        spec = specs.get(src.name)
        dst.set_weights(spec.weights() if spec else src.get_weights())
        plan.apply(dst)
    return folded
