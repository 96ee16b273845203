"""Export: Keras model -> LCE ``.tflite`` flatbuffer, checked against the Keras model.

The path runs one way: :mod:`~bnn_keras.export.fold` rewrites the graph for LCE (with
:mod:`~bnn_keras.export.shifts` moving RPReLU's output shift into the layers after it),
:mod:`~bnn_keras.export.convert` converts it, :mod:`~bnn_keras.export.check` checks the
flatbuffer against the model (with :mod:`~bnn_keras.export.interpreter` and
:mod:`~bnn_keras.export.sign_trace`), and :func:`~bnn_keras.export.export_model` (in
:mod:`~bnn_keras.export.report`) does all of it once and writes what was found: the one
export of ``bnn-keras export`` and of a training run.
"""

from bnn_keras.export.calibrate import calibrate_batchnorm, perturb_shifts
from bnn_keras.export.check import (
    Agreement,
    Deployability,
    Finding,
    SplitCheck,
    check_deployable,
    compare,
)
from bnn_keras.export.convert import convert, save_inference_graph
from bnn_keras.export.deploy_layers import (
    SignKernelConv2D,
    WholeInputConv2D,
    WholeInputSignKernelConv2D,
    needs_whole_input,
)
from bnn_keras.export.flatbuffer import (
    ELEMENTWISE_OPS,
    LCE_CUSTOM_OPS,
    bconv_options,
    check_flatbuffer,
    elementwise_counts,
    input_producers,
    op_counts,
    op_list,
    read_flatbuffer,
)
from bnn_keras.export.fold import binary_conv_layers, fold_scales, foldable_biases
from bnn_keras.export.interpreter import lce_interpreter, predict_tflite
from bnn_keras.export.report import (
    INT8_WARNING,
    ExportReport,
    LabelledSplit,
    default_report_path,
    export_model,
    mac_figures,
    size_figures,
)
from bnn_keras.export.shifts import DeployRPReLU, ShiftPlan, plan_shifts
from bnn_keras.export.sign_trace import Divergence, SignTrace, first_flips, trace_signs

__all__ = [
    "ELEMENTWISE_OPS", "INT8_WARNING", "LCE_CUSTOM_OPS",
    "Agreement", "DeployRPReLU", "Deployability", "Divergence", "ExportReport",
    "Finding", "LabelledSplit", "ShiftPlan",
    "SignKernelConv2D", "SignTrace", "SplitCheck", "WholeInputConv2D",
    "WholeInputSignKernelConv2D",
    "bconv_options", "binary_conv_layers", "calibrate_batchnorm", "check_deployable",
    "check_flatbuffer", "compare", "convert", "default_report_path",
    "elementwise_counts", "export_model", "first_flips", "fold_scales",
    "foldable_biases",
    "input_producers", "lce_interpreter", "mac_figures", "needs_whole_input", "op_counts",
    "op_list", "perturb_shifts", "plan_shifts", "predict_tflite",
    "read_flatbuffer",
    "save_inference_graph", "size_figures", "trace_signs",
]
