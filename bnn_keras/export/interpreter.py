"""LCE's interpreter: loading a flatbuffer and running it."""

from __future__ import annotations

import os

import numpy as np

from bnn_keras.errors import BnnError, first_line


def lce_interpreter(flatbuffer: bytes, *, num_threads: int | None = None,
                    use_indirect_bgemm: bool = False, use_xnnpack: bool = False):
    """LCE's interpreter on ``flatbuffer``, or a one-line :class:`BnnError` when it cannot
    load it. ``num_threads`` defaults to up to 2; ``use_xnnpack`` runs the float ops with
    TFLite's XNNPACK delegate."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    threads = num_threads or min(2, os.cpu_count() or 1)
    try:
        return Interpreter(flatbuffer, num_threads=threads,
                           use_indirect_bgemm=use_indirect_bgemm, use_xnnpack=use_xnnpack)
    except Exception as err:  # noqa: BLE001
        raise BnnError(f"LCE's interpreter cannot load the model: "
                       f"{first_line(err)}") from None


def predict_tflite(flatbuffer: bytes, inputs: np.ndarray) -> np.ndarray:
    """Outputs of LCE's interpreter, one input at a time (LCE models have batch size 1).

    A model with integer input or output (an int8 export for a board) is given
    ``inputs`` quantized with its input's scale and zero point, and its outputs are
    returned dequantized: float32 in and out, whatever the file reads and writes."""
    interpreter = lce_interpreter(flatbuffer)
    kind = np.dtype(interpreter.input_types[0])
    if kind.kind in "iu":
        scale, zero = interpreter.input_scales[0], interpreter.input_zero_points[0]
        bounds = np.iinfo(kind)
        inputs = np.clip(np.round(inputs / scale) + zero, bounds.min, bounds.max).astype(kind)
    outputs = np.concatenate([interpreter.predict(inputs[i:i + 1])
                              for i in range(len(inputs))])
    if np.dtype(interpreter.output_types[0]).kind in "iu":
        scale, zero = interpreter.output_scales[0], interpreter.output_zero_points[0]
        outputs = (outputs.astype(np.float32) - zero) * scale
    return outputs

