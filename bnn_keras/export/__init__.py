"""Export: Keras model -> LCE ``.tflite`` flatbuffer, with an op report and a check
against the Keras model."""

from bnn_keras.export.calibrate import calibrate_batchnorm
from bnn_keras.export.convert import (
    Agreement,
    ExportReport,
    compare,
    convert,
    export_model,
    predict_tflite,
    read_flatbuffer,
)
from bnn_keras.export.flatbuffer import check_flatbuffer, input_producers, op_counts, op_list
from bnn_keras.export.fold import (
    SignKernelConv2D,
    WholeInputConv2D,
    WholeInputSignKernelConv2D,
    binary_conv_layers,
    fold_scales,
    foldable_biases,
    needs_whole_input,
)
from bnn_keras.export.trace import Divergence, SignTrace, first_flips, trace_signs

__all__ = [
    "Agreement", "WholeInputConv2D", "WholeInputSignKernelConv2D", "needs_whole_input",
    "Divergence", "ExportReport", "SignKernelConv2D", "SignTrace",
    "binary_conv_layers",
    "calibrate_batchnorm", "check_flatbuffer", "compare", "convert", "export_model",
    "first_flips", "fold_scales", "foldable_biases", "input_producers", "op_counts", "op_list",
    "predict_tflite", "read_flatbuffer", "trace_signs",
]
