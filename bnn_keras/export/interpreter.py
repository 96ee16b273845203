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
    """Outputs of LCE's interpreter, one input at a time (LCE models have batch size 1)."""
    interpreter = lce_interpreter(flatbuffer)
    return np.concatenate([interpreter.predict(inputs[i:i + 1]) for i in range(len(inputs))])
