"""int8 + 1-bit flatbuffers: the checks :func:`~bnn_keras.export.check_deployable` adds for a
quantization-aware model, and the input and output types a board reads and writes.

- ``int8_kernels``: no float32 ``CONV_2D``, ``DEPTHWISE_CONV_2D`` or ``FULLY_CONNECTED``;
- ``int8_sandwiches``: no float op between a ``DEQUANTIZE`` and a ``QUANTIZE`` inside
  the net (an op the converter could not quantize, computed in float32 and requantized);
- ``int8_macs``: the int8 share of the non-binary MACs (reported; it passes when the
  kernels check does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnn_keras.errors import BnnError, first_line
from bnn_keras.export.finding import Finding
from bnn_keras.export.flatbuffer import _op_names, _parse

#: The input and output types an export can give its flatbuffer.
IO_TYPES = ("float32", "int8", "uint8")
#: Non-binary ops holding the MACs.
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_BOUNDARY = ("QUANTIZE", "DEQUANTIZE")


@dataclass
class _Op:
    name: str
    inputs: list[int]
    outputs: list[int]


def _main_graph(data: bytes) -> tuple[list[_Op], list]:
    """The main subgraph's ops in execution order and its tensors."""
    model = _parse(data)
    graph = model.subgraphs[0]
    names = _op_names(model)[:len(graph.operators)]
    ops = [_Op(n, [int(t) for t in op.inputs if t >= 0], [int(t) for t in op.outputs])
           for n, op in zip(names, graph.operators)]
    return ops, graph.tensors


def _type_name(tensor) -> str:
    from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return names.get(tensor.type, str(tensor.type))


def op_macs(op: _Op, tensors) -> int:
    """Multiply-accumulates of one ``CONV_2D``, ``DEPTHWISE_CONV_2D`` or
    ``FULLY_CONNECTED`` op, from its output and filter shapes."""
    outputs = int(np.prod(tensors[op.outputs[0]].shape))
    filter_shape = [int(d) for d in tensors[op.inputs[1]].shape]
    if op.name == "CONV_2D":  # filter (out, kh, kw, in)
        return outputs * int(np.prod(filter_shape[1:]))
    if op.name == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, out)
        return outputs * filter_shape[1] * filter_shape[2]
    return outputs * filter_shape[-1]  # FULLY_CONNECTED: filter (out, in)


def int8_mac_figures(data: bytes) -> dict:
    """Non-binary MACs of the flatbuffer by input type: ``int8_macs``, ``float_macs``,
    ``int8_mac_share`` and the float ops' names (``float_mac_ops``)."""
    ops, tensors = _main_graph(data)
    int8 = other = 0
    float_ops = []
    for op in ops:
        if op.name not in MAC_OPS:
            continue
        macs = op_macs(op, tensors)
        if _type_name(tensors[op.inputs[0]]) == "INT8":
            int8 += macs
        else:
            other += macs
            float_ops.append(op.name)
    total = int8 + other
    return {"int8_macs": int8, "float_macs": other,
            "int8_mac_share": int8 / total if total else 1.0, "float_mac_ops": float_ops}


def sandwiched_ops(data: bytes) -> list[str]:
    """Float ops inside the net: each one reached from a ``DEQUANTIZE`` and reaching a
    ``QUANTIZE`` through float ops only (``OP#index``)."""
    ops, tensors = _main_graph(data)
    producer = {t: i for i, op in enumerate(ops) for t in op.outputs}
    consumers: dict[int, list[int]] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            consumers.setdefault(t, []).append(i)
    floating = {i for i, op in enumerate(ops) if op.name not in _BOUNDARY
                and any(_type_name(tensors[t]) == "FLOAT32" for t in op.outputs)}

    def reaches(start: int, step, target: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            for j in step(stack.pop()):
                if ops[j].name == target:
                    return True
                if j in floating and j not in seen:
                    seen.add(j)
                    stack.append(j)
        return False

    def up(i: int) -> list[int]:
        return [producer[t] for t in ops[i].inputs if t in producer]

    def down(i: int) -> list[int]:
        return [j for t in ops[i].outputs for j in consumers.get(t, [])]

    return [f"{ops[i].name}#{i}" for i in sorted(floating)
            if reaches(i, up, "DEQUANTIZE") and reaches(i, down, "QUANTIZE")]


def int8_findings(data: bytes) -> list:
    """The int8 :class:`~bnn_keras.export.Finding` s of the module's docstring."""

    macs = int8_mac_figures(data)
    float_ops = macs["float_mac_ops"]
    sandwiches = sandwiched_ops(data)
    share = (f"int8 share of non-binary MACs {macs['int8_mac_share']:.1%} "
             f"({macs['int8_macs']:,} int8, {macs['float_macs']:,} float32)")
    return [
        Finding("int8_kernels", not float_ops,
                "no float32 CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED" if not float_ops
                else f"{len(float_ops)} float32 op(s) left: {', '.join(sorted(set(float_ops)))}"),
        Finding("int8_sandwiches", not sandwiches,
                "no DEQUANTIZE -> float op -> QUANTIZE inside the net" if not sandwiches
                else f"float ops between DEQUANTIZE and QUANTIZE: {', '.join(sandwiches[:8])}"),
        Finding("int8_macs", not float_ops, share),
    ]


def check_io_types(model, input_type: str, output_type: str) -> None:
    """One-line :class:`BnnError` unless both types are in :data:`IO_TYPES` and an
    integer type is asked of a quantization-aware ``model`` only."""
    from bnn_keras.quantize import is_quantized

    for what, kind in (("input", input_type), ("output", output_type)):
        if kind not in IO_TYPES:
            raise BnnError(f"{what} type must be one of {', '.join(IO_TYPES)}, got {kind!r}")
        if kind != "float32" and not is_quantized(model):
            raise BnnError(f"{kind} {what} needs an int8 model, and {model.name!r} is float "
                           "only: train it with --quantize int8, or export with --quantize "
                           "int8 --calibrate DATASET")


def with_io_types(data: bytes, input_type: str, output_type: str) -> bytes:
    """The int8 flatbuffer ``data`` (float32 input and output) reading ``input_type`` and
    writing ``output_type``: its first ``QUANTIZE`` and last ``DEQUANTIZE`` replaced
    (TFLite's own rewrite; ``uint8`` keeps the scale, zero point + 128)."""
    if input_type == output_type == "float32":
        return data
    import tensorflow as tf
    from tensorflow.lite.python.util import modify_model_io_type

    try:
        return bytes(modify_model_io_type(data, getattr(tf, input_type),
                                          getattr(tf, output_type)))
    except (ValueError, RuntimeError) as err:
        raise BnnError(f"cannot give the flatbuffer {input_type} input and {output_type} "
                       f"output: {first_line(err)}") from None


def io_types(data: bytes) -> tuple[str, str]:
    """The flatbuffer's input and output types, lower case (``float32``, ``int8``, ...)."""
    model = _parse(data)
    graph = model.subgraphs[0]
    return (_type_name(graph.tensors[graph.inputs[0]]).lower(),
            _type_name(graph.tensors[graph.outputs[0]]).lower())
