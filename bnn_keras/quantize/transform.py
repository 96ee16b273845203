"""A float BNN -> its quantization-aware (QAT) copy: what runs in int8 after conversion
is fake-quantized, the binary convs stay as they are (``LceBconv2d``).

:func:`quantize_model` rebuilds the functional graph layer by layer: each layer with an
int8 counterpart (:mod:`bnn_keras.quantize.layers`) becomes it, and every tensor the
flatbuffer holds in int8 gets a :class:`~bnn_keras.quantize.ranges.FakeQuant` after the
layer producing it, except where the converter needs none:

- after the layers that move values without computing new ones (pools, reshapes):
  int8 kernels that keep their input's scale;
- after a conv or ``Dense`` whose only consumer is a batch norm or a scalar rescaling:
  the converter folds those into it (into ``LceBconv2d``'s output transform for a
  binary conv), so the range belongs after them;
- after a ``QatLearnableBias``, which quantizes its own output.

Binary convs that pad with zeros are rebuilt to pad with +1: LCE's optimized
``LceBconv2d`` corrects zero padding only when it writes float32, so a zero-padded one
could not write int8 (LCE's reference kernel can, but boards run the optimized one).
The change touches only the borders, and QAT fine-tuning adapts to it; the calibration
path measures what it costs.
"""

from __future__ import annotations

import warnings

import larq as lq
import numpy as np
import tensorflow as tf
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.layer_names import fake_quant_name
from bnn_keras.layers import (
    ChannelGate,
    LearnableBias,
    RecouplingMix,
    RPReLU,
    ScaledStdConv2D,
)
from bnn_keras.quantize import layers as qat
from bnn_keras.quantize.ranges import SIGMOID_RANGE, FakeQuant, RangeOwner
from bnn_keras.quantizers import is_binarizing

#: Layers whose int8 kernels keep their input's scale: no range of their own.
#: (``Rotate180``'s ``REVERSE_V2`` is no such op for the converter: it needs one.)
SAME_SCALE = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.Reshape,
              keras.layers.Flatten, keras.layers.ZeroPadding2D,
              keras.layers.Dropout, keras.layers.Cropping2D)
_COMPUTING = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
#: exact class -> its int8 counterpart (subclasses are other layers: they stay)
_COUNTERPARTS = {
    keras.layers.Conv2D: qat.QatConv2D, ScaledStdConv2D: qat.QatScaledStdConv2D,
    keras.layers.Dense: qat.QatDense, LearnableBias: qat.QatLearnableBias,
    RPReLU: qat.QatRPReLU, RecouplingMix: qat.QatRecouplingMix,
    ChannelGate: qat.QatChannelGate,
}


class QuantizeError(BnnError):
    """A model that cannot be made quantization-aware, or an int8 request it cannot meet."""


def is_quantized(model: keras.Model) -> bool:
    """Whether ``model`` is quantization-aware (holds int8 ranges)."""
    return any(isinstance(layer, RangeOwner) for layer in model.layers)


def range_owners(model: keras.Model) -> list[RangeOwner]:
    """The layers of ``model`` holding int8 ranges."""
    return [layer for layer in model.layers if isinstance(layer, RangeOwner)]


def unset_ranges(model: keras.Model) -> list[str]:
    """``layer/range`` of every range never set (still ``[0, 0]``)."""
    return [f"{layer.name}/{name}" for layer in range_owners(model)
            for name, low, high in layer.range_variables()
            if float(low.numpy()) == 0.0 and float(high.numpy()) == 0.0]


def require_ranges(model: keras.Model) -> None:
    """One-line :class:`QuantizeError` when some int8 range of ``model`` was never set."""
    unset = unset_ranges(model)
    if unset:
        raise QuantizeError(f"int8 model {model.name!r} has {len(unset)} range(s) never set "
                            f"(first {unset[0]}): train it (--quantize int8) or calibrate it "
                            "(--calibrate DATASET) first")


def _consumers(model: keras.Model) -> dict[str, list[keras.layers.Layer]]:
    inside = set(model.layers)
    return {layer.name: list(dict.fromkeys(node.outbound_layer for node in layer._outbound_nodes
                                            if node.outbound_layer in inside))
            for layer in model.layers}


def _float_compute(layer: keras.layers.Layer) -> bool:
    """A conv or ``Dense`` computing on real values (not an ``LceBconv2d``)."""
    return isinstance(layer, _COMPUTING) and not is_binarizing(layer)


def _absorbed(layer: keras.layers.Layer, consumers: list) -> bool:
    """A conv or ``Dense`` whose only consumer is a last-axis batch norm or a scalar
    rescaling: the converter folds that consumer into it."""
    if not isinstance(layer, _COMPUTING) or len(consumers) != 1:
        return False
    after = consumers[0]
    if isinstance(after, keras.layers.BatchNormalization):
        return after.axis in ([3], [-1]) and len(after._inbound_nodes) == 1
    return (isinstance(after, keras.layers.Rescaling) and np.ndim(after.scale) == 0
            and np.ndim(after.offset) == 0 and float(after.offset) == 0.0)


def _counterpart(layer: keras.layers.Layer, producer_absorbs: bool):
    """The int8 class ``layer`` becomes, or its own."""
    kind = type(layer)
    if kind is lq.layers.QuantConv2D and layer.kernel_quantizer is None \
            and not is_binarizing(layer):
        return qat.QatQuantConv2D
    if kind is keras.layers.BatchNormalization and not producer_absorbs \
            and layer.axis in ([3], [-1]):
        return qat.QatBatchNormalization
    return _COUNTERPARTS.get(kind, kind)


def _output_range(layer: keras.layers.Layer, consumers: list):
    """``None`` (no :class:`FakeQuant` after ``layer``), ``"tracked"`` or a fixed range."""
    if isinstance(layer, (*SAME_SCALE, LearnableBias)) or _absorbed(layer, consumers):
        return None
    activation = getattr(layer, "activation", None)
    if activation is not None and keras.activations.serialize(activation) == "sigmoid":
        return SIGMOID_RANGE
    return "tracked"


def zero_padded_binary(layer: keras.layers.Layer) -> bool:
    """A binary conv with "same" padding and ``pad_values`` 0 (LCE refuses int8 output
    even for a 1x1 one, which reads no padding)."""
    return (isinstance(layer, keras.layers.Conv2D) and is_binarizing(layer)
            and layer.padding == "same" and getattr(layer, "pad_values", 0.0) == 0.0)


def _config(layer: keras.layers.Layer) -> dict:
    config = layer.get_config()
    if zero_padded_binary(layer):
        config["pad_values"] = 1.0
    return config


def check_quantizable(model: keras.Model) -> None:
    """Raise :class:`QuantizeError` (one line) when ``model`` has nothing to quantize."""
    if is_quantized(model):
        raise QuantizeError(f"model {model.name!r} is already quantization-aware (int8): "
                            "nothing to quantize")
    if not any(_float_compute(layer) for layer in model.layers):
        raise QuantizeError(f"model {model.name!r} has no float conv or Dense layer: "
                            "nothing to quantize to int8")


def quantize_model(model: keras.Model) -> keras.Model:
    """The quantization-aware copy of ``model`` (a functional Keras model of any
    registered family), with ``model``'s weights and every int8 range not yet set (the
    first training or calibration batch sets them), its zero-padded binary convs padding
    with +1 (see the module's docstring; :func:`zero_padded_binary` finds them).

    Raises:
        QuantizeError: when ``model`` is quantization-aware already or has no float conv
            or ``Dense`` layer.

    Example:
        ```python
        net = models.create("reactnet_18", "bf", num_classes=10, input_shape=(32, 32, 3))
        qat_net = quantize_model(net)   # train it, then export: an int8 + 1-bit .tflite
        ```
    """
    check_quantizable(model)
    padded = [lay.name for lay in model.layers
              if zero_padded_binary(lay) and any(k > 1 for k in lay.kernel_size)]
    if padded:
        warnings.warn(f"int8: {len(padded)} binary conv(s) of {model.name} now pad with +1 "
                      "instead of 0 (LCE's optimized LceBconv2d writes int8 only so); "
                      "training adapts to it", UserWarning, stacklevel=2)
    consumers = _consumers(model)
    absorbs = {c.name for layer in model.layers if _absorbed(layer, consumers[layer.name])
               for c in consumers[layer.name]}
    new_layers, fakes = {}, {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            fakes[layer.name] = FakeQuant(name=fake_quant_name(layer.name))
            continue
        cls = _counterpart(layer, layer.name in absorbs)
        new_layers[layer.name] = cls.from_config(_config(layer))
        kind = _output_range(layer, consumers[layer.name])
        if kind is not None:
            fakes[layer.name] = FakeQuant(None if kind == "tracked" else kind,
                                          name=fake_quant_name(layer.name))
    copy = _rebuild(model, new_layers, fakes)
    for layer in model.layers:
        if layer.name in new_layers:
            target = new_layers[layer.name]
            own = layer.get_weights()
            target.set_weights(own + target.get_weights()[len(own):])
    return copy


def _rebuild(model: keras.Model, new_layers: dict, fakes: dict) -> keras.Model:
    """``model``'s graph called again with ``new_layers`` in place of its layers and
    each of ``fakes`` applied to the output of the layer of its name (as
    ``Functional._run_internal_graph`` walks it)."""
    usage = model._tensor_usage_count
    tensors: dict[str, list] = {}
    inputs = []
    for x in model.inputs:
        layer = x._keras_history.layer
        new_input = keras.Input(batch_shape=x.shape, dtype=x.dtype, name=layer.name)
        inputs.append(new_input)
        y = fakes[layer.name](new_input) if layer.name in fakes else new_input
        tensors[str(id(x))] = [y] * usage[str(id(x))]
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input or any(t not in tensors for t in node.flat_input_ids):
                continue
            args, kwargs = node.map_arguments(tensors)
            name = node.layer.name
            outputs = new_layers[name](*args, **kwargs)
            if name in fakes:
                outputs = tf.nest.map_structure(fakes[name], outputs)
            for x_id, y in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                tensors[x_id] = [y] * usage[x_id]
    outputs = [tensors[str(id(x))].pop() for x in model.outputs]
    return keras.Model(inputs, tf.nest.pack_sequence_as(model._nested_outputs, outputs),
                       name=model.name)
