"""Reading TFLite flatbuffers: validity, the operators they hold and LCE's op options."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bnn_keras.errors import BnnError, first_line

TFLITE_IDENTIFIER = b"TFL3"

#: LCE's custom ops: the only custom ops its interpreter has kernels for.
LCE_CUSTOM_OPS = frozenset({"LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d"})

#: TFLite's element-wise float ops: each one more pass over its feature map.
ELEMENTWISE_OPS = frozenset({"ADD", "SUB", "MUL", "DIV", "NEG", "ABS", "RELU", "RELU6",
                             "PRELU", "LEAKY_RELU", "MAXIMUM", "MINIMUM",
                             "SQUARED_DIFFERENCE"})

#: ``padding`` in ``LceBconv2d``'s options: TFLite's schema enum (SAME, VALID).
_SAME_PADDING = 0


def _check_identifier(data: bytes, source: str) -> None:
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise BnnError(f"{source} is not a TFLite model (no 'TFL3' flatbuffer identifier)")


def check_flatbuffer(data: bytes, source: str = "input") -> None:
    """Raise a one-line :class:`BnnError` unless ``data`` is a TFLite flatbuffer whose
    structure holds together.

    TFLite's interpreter trusts the file: a valid header over a damaged body (a truncated
    download, a half-copied file) makes it read out of bounds and crash the process. So
    before any interpreter sees it, the whole model is parsed with the flatbuffers schema
    (every table and vector inside the file) and every index checked: buffer offsets and
    sizes within the file, tensor buffer indices, operator codes, tensor indices of
    operators and subgraphs, and subgraph indices.
    """
    _check_identifier(data, source)
    problem = structure_problem(_parse(data, source), len(data))
    if problem:
        raise BnnError(f"{source} is a corrupt TFLite flatbuffer: {problem}")


def read_flatbuffer(path: str | os.PathLike) -> bytes:
    """Read a ``.tflite`` file, with one-line errors for missing, non-model or damaged files
    (see :func:`check_flatbuffer`)."""
    path = Path(path)
    if not path.is_file():
        raise BnnError(f"model file not found: {path}")
    data = path.read_bytes()
    check_flatbuffer(data, str(path))
    return data


def _indices_problem(indices, count: int, what: str, optional: bool = False) -> str | None:
    low = -1 if optional else 0
    for i in [] if indices is None else indices:
        if not low <= int(i) < count:
            return f"{what} has tensor index {int(i)}, outside 0..{count - 1}"
    return None


def _subgraph_problem(graph, g: int, model) -> str | None:
    """The first out-of-range index in subgraph ``g``, or ``None``."""
    tensors, buffers, codes = graph.tensors or [], model.buffers or [], model.operatorCodes or []
    for t, tensor in enumerate(tensors):
        if not 0 <= tensor.buffer < len(buffers):
            return (f"tensor {t} of subgraph {g} has buffer index {tensor.buffer}, but the "
                    f"model has {len(buffers)} buffers")
    problem = (_indices_problem(graph.inputs, len(tensors), f"subgraph {g}'s inputs")
               or _indices_problem(graph.outputs, len(tensors), f"subgraph {g}'s outputs"))
    if problem:
        return problem
    for k, op in enumerate(graph.operators or []):
        where = f"operator {k} of subgraph {g}"
        if not 0 <= op.opcodeIndex < len(codes):
            return (f"{where} has operator code {op.opcodeIndex}, but the model has "
                    f"{len(codes)} operator codes")
        for name in ("inputs", "outputs", "intermediates"):
            problem = _indices_problem(getattr(op, name), len(tensors), f"{where}'s {name}",
                                       optional=True)
            if problem:
                return problem
        for name, value in getattr(op.builtinOptions, "__dict__", {}).items():
            if name.endswith("SubgraphIndex") and not 0 <= value < len(model.subgraphs):
                return f"{where} names subgraph {value}, outside 0..{len(model.subgraphs) - 1}"
    return None


def structure_problem(model, size: int) -> str | None:
    """What is out of range in a parsed ``ModelT`` of a ``size``-byte file, or ``None``."""
    if not model.subgraphs:
        return "it has no subgraph"
    for i, buffer in enumerate(model.buffers or []):
        if (buffer.offset or buffer.size) and buffer.offset + buffer.size > size:
            return (f"buffer {i} (offset {buffer.offset}, {buffer.size} bytes) lies outside "
                    f"the file ({size} bytes)")
    for g, graph in enumerate(model.subgraphs):
        problem = _subgraph_problem(graph, g, model)
        if problem:
            return problem
    for signature in model.signatureDefs or []:
        if not 0 <= signature.subgraphIndex < len(model.subgraphs):
            return f"a signature names subgraph {signature.subgraphIndex}"
    return None


def _builtin_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {
        value: name
        for name, value in vars(schema.BuiltinOperator).items()
        if not name.startswith("_") and isinstance(value, int)
    }


def _parse(data: bytes, source: str = "input"):
    """``data`` as a TFLite ``ModelT``, with one-line errors for what is not one."""
    from tensorflow.lite.python import schema_py_generated as schema

    _check_identifier(data, source)
    try:
        return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as err:  # noqa: BLE001
        raise BnnError(f"{source} is a corrupt TFLite flatbuffer: {first_line(err)}") from None


def _op_names(model) -> list[str]:
    builtin = _builtin_names()
    codes = []
    for code in model.operatorCodes:
        if code.customCode:
            codes.append(code.customCode.decode())
        else:
            number = max(code.builtinCode, code.deprecatedBuiltinCode)
            codes.append(builtin.get(number, f"BUILTIN_{number}"))
    return [codes[op.opcodeIndex] for graph in model.subgraphs for op in graph.operators]


def op_list(data: bytes) -> list[str]:
    """Operator type names in execution order (custom ops by their custom code)."""
    return _op_names(_parse(data))


@dataclass(frozen=True)
class OpNode:
    """One operator of the main subgraph, as TFLite's op profiler names it: ``index`` (the
    ``:N`` of its node name) and ``outputs`` (the output tensors' names)."""

    index: int
    op_type: str
    outputs: tuple[str, ...]
    output_shape: tuple[int, ...]
    #: the second input's shape: a conv's filter, a fully connected layer's weights
    weight_shape: tuple[int, ...] | None
    #: ``LceBconv2d``'s input channels (its filter is stored bitpacked)
    channels_in: int | None = None


def op_nodes(data: bytes) -> list[OpNode]:
    """The operators of the main subgraph in execution order."""
    model = _parse(data)
    graph = model.subgraphs[0]
    bconv = iter(bconv_options(data))
    nodes = []
    for index, (name, op) in enumerate(zip(_op_names(model), graph.operators)):
        inputs = [int(t) for t in (op.inputs if op.inputs is not None else []) if t >= 0]
        outputs = [int(t) for t in (op.outputs if op.outputs is not None else [])]
        channels = next(bconv).get("channels_in") if name == "LceBconv2d" else None
        nodes.append(OpNode(index, name, tuple(graph.tensors[t].name.decode(errors="replace")
                                               for t in outputs),
                            _shape(graph, outputs[0]) if outputs else (),
                            _shape(graph, inputs[1]) if len(inputs) > 1 else None, channels))
    return nodes


def _shape(graph, tensor: int) -> tuple[int, ...]:
    return tuple(int(d) for d in graph.tensors[tensor].shape)


def op_counts(data: bytes) -> Counter:
    """How many operators of each type the flatbuffer holds."""
    return Counter(op_list(data))


def elementwise_counts(data: bytes) -> Counter:
    """How many operators of each :data:`ELEMENTWISE_OPS` type the flatbuffer holds."""
    return Counter({op: n for op, n in op_counts(data).items() if op in ELEMENTWISE_OPS})


def input_producers(data: bytes, op_type: str) -> list[list[str]]:
    """For each operator of ``op_type``, the types of the operators producing its inputs
    (``"<input>"`` for graph inputs and constants)."""
    model = _parse(data)
    names = _op_names(model)
    result, index = [], 0
    for graph in model.subgraphs:
        producer: dict[int, str] = {}
        for offset, op in enumerate(graph.operators):
            for t in op.outputs:
                producer[int(t)] = names[index + offset]
        for offset, op in enumerate(graph.operators):
            if names[index + offset] == op_type:
                result.append([producer.get(int(t), "<input>") for t in op.inputs if t >= 0])
        index += len(graph.operators)
    return result


def bconv_input_taps(data: bytes) -> list[tuple[int, tuple[int, ...]] | None]:
    """For each ``LceBconv2d`` of the main subgraph, in execution order, the float tensor
    its input was binarised from (index and shape): the input of the ``LceQuantize``
    feeding it, or ``None`` where its bitpacked input comes from another op (a binary conv
    or pool writing bitpacked output)."""
    model = _parse(data)
    names = _op_names(model)
    graph = model.subgraphs[0]
    quantized_from = {int(op.outputs[0]): int(op.inputs[0])
                      for name, op in zip(names, graph.operators) if name == "LceQuantize"}
    taps: list[tuple[int, tuple[int, ...]] | None] = []
    for name, op in zip(names, graph.operators):
        if name == "LceBconv2d":
            source = quantized_from.get(int(op.inputs[0]))
            taps.append(None if source is None else (
                source, tuple(int(d) for d in graph.tensors[source].shape)))
    return taps


def bconv_options(data: bytes) -> list[dict]:
    """For each ``LceBconv2d``, in execution order, its custom options (LCE's flexbuffer
    map: ``padding``, ``pad_values``, strides, ...) and ``filter_shape``, its filter
    tensor's ``(out, height, width, in)``."""
    from flatbuffers import flexbuffers

    model = _parse(data)
    names = _op_names(model)
    options, index = [], 0
    for graph in model.subgraphs:
        for offset, op in enumerate(graph.operators):
            if names[index + offset] == "LceBconv2d":
                raw = bytes(op.customOptions) if op.customOptions is not None else b""
                found = dict(flexbuffers.Loads(raw)) if raw else {}
                found["filter_shape"] = tuple(int(d) for d in graph.tensors[op.inputs[1]].shape)
                options.append(found)
        index += len(graph.operators)
    return options


def zero_padding_corrected(options: dict) -> bool:
    """Whether LCE's kernel applies its zero-padding correction to an ``LceBconv2d`` with
    these :func:`bconv_options`: "same" padding with ``pad_values`` 0 and a filter
    larger than 1x1 (a 1x1 filter reads no padding)."""
    _, height, width, _ = options["filter_shape"]
    return (options.get("padding") == _SAME_PADDING and options.get("pad_values") == 0
            and (height > 1 or width > 1))


def with_outputs(data: bytes, tensors: list[int]) -> bytes:
    """``data`` with ``tensors`` (indices into the main subgraph) appended to its outputs.

    An interpreter then keeps those intermediate tensors and returns them after the
    model's own outputs; every operator and weight stays as it was, so what they hold is
    what the unmodified flatbuffer computes.
    """
    import flatbuffers

    model = _parse(data)
    graph = model.subgraphs[0]
    graph.outputs = [int(t) for t in graph.outputs] + [int(t) for t in tensors]
    model.signatureDefs = None  # its output list would no longer be the graph's
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())
