"""Export-time folding of RPReLU's output shift into the layers after it.

An RPReLU is ``prelu(x - gamma) + zeta``: two per-channel float ops around the PReLU on
every feature map it sees. ``+ zeta`` moves forward into every consumer, where a constant
costs nothing: the next ``LearnableBias`` (``sign(y + zeta + b)``: one add before the
sign instead of two), the next RPReLU's ``gamma``, a batch norm's mean, the bias of a 1x1
float conv or ``Dense`` (``W^T zeta``), through pools, adds and concatenations. It moves
only when every path from the RPReLU ends in such a layer; outputs are unchanged up to
float reassociation. The rest is :class:`DeployRPReLU`, which the converter lowers to a
``SUB`` and one ``PRELU``.

``- gamma`` stays: moved back across the residual add into the binary branch's bias it
would cost nothing either, but ``(a - gamma) + b`` rounds unlike ``(a + b) - gamma``, and
in a net without batch norm (``reactnet_a`` ``none`` on its official weights) one sign
within a few ulps of zero then flips and the flip grows through every later block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
import tf_keras as keras

from bnn_keras.layers import LearnableBias, RPReLU
from bnn_keras.quantizers import is_binarizing

#: (layer name, variable) -> what is added to that variable of the export copy.
Edits = dict[tuple[str, str], np.ndarray]

_POOLS = (keras.layers.AveragePooling2D, keras.layers.MaxPooling2D,
          keras.layers.GlobalAveragePooling2D)


@keras.utils.register_keras_serializable(package="bnn_keras")
class DeployRPReLU(RPReLU):
    r"""What an :class:`~bnn_keras.layers.RPReLU` deploys as: the same
    \(y = \mathrm{prelu}_a(x - \gamma) + \zeta\), with ``alpha`` broadcast over the
    spatial axes (the form the TFLite converter fuses into one ``PRELU``) and each shift
    that :func:`plan_shifts` moved elsewhere left out (``shift_in`` / ``shift_out``)."""

    def __init__(self, shift_in: bool = True, shift_out: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.shift_in, self.shift_out = bool(shift_in), bool(shift_out)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        x = inputs - self.bias_in if self.shift_in else inputs
        alpha = tf.reshape(self.alpha, [1] * (x.shape.rank - 2) + [-1])
        y = tf.nn.relu(x) + (-alpha) * tf.nn.relu(-x)
        return y + self.bias_out if self.shift_out else y

    def get_config(self) -> dict:
        return {**super().get_config(), "shift_in": self.shift_in, "shift_out": self.shift_out}


@dataclass
class ShiftPlan:
    """Where :func:`plan_shifts` moved each RPReLU's shifts.

    ``edits`` are added to the export copy's variables (a ``LearnableBias``'s in units of
    its input: times its ``scale``); ``new_bias`` names the convs and ``Dense`` layers
    that need a bias to take one; ``rprelus`` maps each RPReLU to the shifts it keeps
    (``shift_in``, ``shift_out``)."""

    edits: Edits = field(default_factory=dict)
    new_bias: set[str] = field(default_factory=set)
    rprelus: dict[str, tuple[bool, bool]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.rprelus)

    def add(self, edits: Edits) -> None:
        for key, value in edits.items():
            self.edits[key] = self.edits.get(key, 0.0) + value

    def apply(self, layer: keras.layers.Layer) -> None:
        """Add the planned edits to the export copy ``layer``'s variables."""
        for (name, attribute), value in self.edits.items():
            if name != layer.name:
                continue
            variable = getattr(layer, attribute)
            value = np.asarray(value, np.float32)
            if isinstance(layer, LearnableBias):
                value = value * layer.scale
            if variable.shape[-1] != value.shape[-1]:  # a whole-input conv's tiled bias
                value = np.tile(value, variable.shape[-1] // value.shape[-1])
            variable.assign(variable.numpy() + value)


def _producers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    inbound = layer._inbound_nodes[0].inbound_layers
    return list(inbound) if isinstance(inbound, (list, tuple)) else [inbound]


class _Graph:
    """Consumers of a functional model's layers (each called once)."""

    def __init__(self, model: keras.Model):
        self.layers = set(model.layers)
        self.outputs = {t._keras_history.layer for t in model.outputs}

    def consumers(self, layer: keras.layers.Layer) -> list[keras.layers.Layer]:
        found = [node.outbound_layer for node in layer._outbound_nodes
                 if node.outbound_layer in self.layers]
        return list(dict.fromkeys(found))


def _has_bias_slot(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))


def _response(layer: keras.layers.Layer, delta: np.ndarray) -> np.ndarray:
    """What a 1x1 float conv or ``Dense`` adds to its output for ``delta`` added to its
    input: ``f(delta) - f(0)`` (``W^T delta``), computed by the layer itself."""
    shape = (1, delta.shape[-1]) if isinstance(layer, keras.layers.Dense) else (1, 1, 1, -1)
    x = np.stack([delta, np.zeros_like(delta)]).astype(np.float32).reshape(2, *shape[1:])
    y = layer(tf.constant(x)).numpy().reshape(2, -1)
    return y[0] - y[1]


def _affine_1x1(layer: keras.layers.Layer) -> bool:
    """A float ``Dense`` or 1x1 conv: a constant input shift is a constant output shift."""
    if is_binarizing(layer) or len(layer._inbound_nodes) != 1:
        return False
    if isinstance(layer, keras.layers.Dense):
        return True
    return (isinstance(layer, keras.layers.Conv2D)
            and not isinstance(layer, (keras.layers.DepthwiseConv2D,
                                       keras.layers.Conv2DTranspose))
            and tuple(layer.kernel_size) == (1, 1) and layer.groups == 1)


def _forward(graph: _Graph, layer, delta: np.ndarray) -> Edits | None:
    """Edits that undo ``delta`` removed from ``layer``'s output in every consumer, or
    ``None`` when some consumer cannot take it."""
    consumers = graph.consumers(layer)
    if not consumers or layer in graph.outputs:
        return None
    edits: Edits = {}
    for consumer in consumers:
        got = _into(graph, consumer, layer, delta)
        if got is None:
            return None
        for key, value in got.items():
            edits[key] = edits.get(key, 0.0) + value
    return edits


def _into(graph: _Graph, layer, source, delta: np.ndarray) -> Edits | None:
    """Edits for ``layer`` reading ``source``'s output ``delta`` too low."""
    if len(layer._inbound_nodes) != 1:
        return None
    producers = _producers(layer)
    shift = delta * sum(p is source for p in producers)
    if isinstance(layer, LearnableBias):
        return {(layer.name, "bias"): shift}
    if isinstance(layer, RPReLU):
        return {(layer.name, "bias_in"): -shift}
    if isinstance(layer, keras.layers.BatchNormalization) and layer.axis in ([3], [-1]):
        return {(layer.name, "moving_mean"): -shift}
    if _affine_1x1(layer):
        return {(layer.name, "bias"): _response(layer, shift)}
    if isinstance(layer, (*_POOLS, keras.layers.Add)):
        return _forward(graph, layer, shift)
    if isinstance(layer, keras.layers.Rescaling) and np.ndim(layer.scale) == 0:
        return _forward(graph, layer, shift * layer.scale)
    if isinstance(layer, keras.layers.Concatenate) and layer.axis in (3, -1):
        parts = [delta if p is source else np.zeros(int(p.output_shape[-1]), np.float32)
                 for p in producers]
        return _forward(graph, layer, np.concatenate(parts))
    return None


def plan_shifts(model: keras.Model) -> ShiftPlan:
    """Where each RPReLU of ``model`` can move its output shift (see the module
    docstring)."""
    graph, plan = _Graph(model), ShiftPlan()
    for layer in model.layers:
        if not isinstance(layer, RPReLU) or len(layer._inbound_nodes) != 1:
            continue
        zeta = layer.bias_out.numpy()
        ahead = _forward(graph, layer, zeta)
        if ahead:
            plan.add(ahead)
            plan.add({(layer.name, "bias_out"): -zeta})
        plan.rprelus[layer.name] = (True, not ahead)
    plan.new_bias = {name for name, attribute in plan.edits if attribute == "bias"
                     and _has_bias_slot(model.get_layer(name))
                     and not model.get_layer(name).use_bias}
    return plan
