"""Reading TFLite flatbuffers: validity and the operators they hold."""

from __future__ import annotations

from collections import Counter

from bnn_keras.errors import BnnError

TFLITE_IDENTIFIER = b"TFL3"


def check_flatbuffer(data: bytes, source: str = "input") -> None:
    """Raise :class:`BnnError` unless ``data`` is a TFLite flatbuffer."""
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise BnnError(f"{source} is not a TFLite model (no 'TFL3' flatbuffer identifier)")


def _builtin_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {
        value: name
        for name, value in vars(schema.BuiltinOperator).items()
        if not name.startswith("_") and isinstance(value, int)
    }


def op_list(data: bytes) -> list[str]:
    """Operator type names in execution order (custom ops by their custom code)."""
    from tensorflow.lite.python import schema_py_generated as schema

    check_flatbuffer(data)
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as err:  # noqa: BLE001
        raise BnnError(f"corrupt TFLite flatbuffer: {err}") from None
    builtin = _builtin_names()
    codes = []
    for code in model.operatorCodes:
        if code.customCode:
            codes.append(code.customCode.decode())
        else:
            number = max(code.builtinCode, code.deprecatedBuiltinCode)
            codes.append(builtin.get(number, f"BUILTIN_{number}"))
    return [codes[op.opcodeIndex] for graph in model.subgraphs for op in graph.operators]


def op_counts(data: bytes) -> Counter:
    """How many operators of each type the flatbuffer holds."""
    return Counter(op_list(data))


def input_producers(data: bytes, op_type: str) -> list[list[str]]:
    """For each operator of ``op_type``, the types of the operators producing its inputs
    (``"<input>"`` for graph inputs and constants)."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = op_list(data)
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
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
