"""Keras -> LCE flatbuffer: the conversion, after :func:`~bnn_keras.export.fold_scales`.

Three routes, all giving the same ops and outputs. A single-input, single-output model is
traced once at batch size 1; under :data:`FROZEN_GRAPH_MAX_BYTES` of variables its
variables are frozen into a GraphDef that LCE converts directly (the quickest route, but
through LCE's private entry point, so only on the LCE release it was written for:
:data:`FROZEN_ROUTE_LCE`); otherwise the traced function is saved as a SavedModel for
LCE's public ``convert_saved_model``. Other models go through LCE's public
``convert_keras_model``.
"""

from __future__ import annotations

import tempfile

import numpy as np
import tf_keras as keras

from bnn_keras.errors import BnnError, first_line
from bnn_keras.export.flatbuffer import LCE_CUSTOM_OPS, op_counts
from bnn_keras.export.fold import fold_scales
from bnn_keras.models.dtypes import float32_model

#: Models with fewer bytes of variables than this convert through a frozen GraphDef;
#: larger ones through a SavedModel, because freezing copies every weight into the
#: GraphDef and the converter's memory grows with it.
FROZEN_GRAPH_MAX_BYTES = 128 * 2**20

#: The LCE release (version prefix) whose private ``convert_graphdef_to_tflite_flatbuffer``
#: the frozen route calls; on any other release every model takes the public routes.
FROZEN_ROUTE_LCE = "0.16."


def frozen_route_available() -> bool:
    """Whether the installed LCE is the release the frozen route was written for."""
    import larq_compute_engine as lce

    return str(lce.__version__).startswith(FROZEN_ROUTE_LCE)


def _inference_function(model: keras.Model):
    """``model``'s inference call at batch size 1, traced once, as a concrete function."""
    import tensorflow as tf

    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32, name=model.input_names[0])
    output_name = model.output_names[0]
    function = tf.function(lambda x: {output_name: model(x, training=False)},
                           input_signature=[spec])
    return function.get_concrete_function()


def save_inference_graph(model: keras.Model, directory: str) -> None:
    """Save ``model``'s inference call at batch size 1 as a SavedModel, one signature.

    ``lce.convert_keras_model`` saves through Keras's SavedModel export, which traces
    every layer's call on its own, most of the conversion time of a deep net. Tracing the
    model once and saving only that function and the variables gives the converter the
    same graph (same ops, same outputs) sooner.
    """
    import tensorflow as tf

    module = tf.Module()
    module.weights = list(model.variables)  # tracked, so the SavedModel holds them
    # no gradient functions: the converter never reads them, and tracing larq's
    # custom-gradient quantizers for them takes time
    tf.saved_model.save(module, directory,
                        signatures={"serving_default": _inference_function(model)},
                        options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))


def _convert_frozen(model: keras.Model) -> bytes:
    """Freeze the inference function's variables into constants and convert the GraphDef
    with LCE's default options: the route ``lce.convert_keras_model`` falls back to
    (LCE 0.16's private ``convert_graphdef_to_tflite_flatbuffer``), without writing a
    SavedModel."""
    from larq_compute_engine.mlir._tf_tfl_flatbuffer import (
        convert_graphdef_to_tflite_flatbuffer,
    )
    from larq_compute_engine.mlir.python.converter import _contains_training_quant_op
    from tensorflow.core.framework.types_pb2 import DataType
    from tensorflow.lite.python.util import get_tensor_name
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(_inference_function(model),
                                               lower_control_flow=False)
    graph_def = frozen.graph.as_graph_def()
    inputs = [t for t in frozen.inputs if t.dtype.name != "resource"]
    return convert_graphdef_to_tflite_flatbuffer(
        graph_def.SerializeToString(),
        [get_tensor_name(t) for t in inputs],
        [DataType.Name(t.dtype.as_datatype_enum) for t in inputs],
        [t.shape.as_list() for t in inputs],
        [get_tensor_name(t) for t in frozen.outputs],
        _contains_training_quant_op(graph_def),  # fake-quant ops: an int8 model
        "arm",
        None,
    )


def _variable_bytes(model: keras.Model) -> int:
    return sum(int(np.prod(v.shape)) * v.dtype.size for v in model.variables)


def _uses_frozen_route(model: keras.Model, lce_kwargs: dict) -> bool:
    return (not lce_kwargs and _variable_bytes(model) < FROZEN_GRAPH_MAX_BYTES
            and frozen_route_available())


def convert(model: keras.Model, *, fold_biases: bool = True, **lce_kwargs) -> bytes:
    """Convert ``model`` (its float32 copy when it is mixed precision,
    :func:`~bnn_keras.models.dtypes.float32_model`) with LCE: :func:`convert_float32`."""
    return convert_float32(float32_model(model), fold_biases=fold_biases, **lce_kwargs)


def convert_float32(model: keras.Model, *, fold_biases: bool = True, **lce_kwargs) -> bytes:
    """Convert the float32 network ``model`` with LCE after
    :func:`~bnn_keras.export.fold_scales` (``fold_biases`` goes to it). A caller that
    holds a network of unknown precision calls :func:`convert`, or makes the float32
    copy once itself as :func:`~bnn_keras.export.export_model` does.

    The route (see the module's docstring) does not change the result. ``lce_kwargs`` go
    to the converter (e.g. ``experimental_default_int8_range``) and select a public
    route.

    A quantization-aware model (:mod:`bnn_keras.quantize`) converts to an int8 + 1-bit
    flatbuffer with float32 input and output (:func:`~bnn_keras.export.int8.with_io_types`
    changes them).

    Raises:
        BnnError: one line, when LCE cannot convert the model, its flatbuffer holds ops
            with no TFLite or LCE kernel, or an int8 model has ranges never set.
    """
    import larq_compute_engine as lce

    from bnn_keras.quantize import is_quantized, require_ranges

    if is_quantized(model):
        require_ranges(model)
        # its shifts stay in place: moved, they would shift quantized tensors per channel
        fold_biases = False
    try:
        if len(model.inputs) == 1 and len(model.outputs) == 1:
            if _uses_frozen_route(model, lce_kwargs):
                flatbuffer = _convert_frozen(fold_scales(model, fold_biases=fold_biases))
            else:
                with tempfile.TemporaryDirectory() as directory:
                    # the folded copy is dropped before the converter runs: for a large
                    # model every copy of the weights counts
                    save_inference_graph(fold_scales(model, fold_biases=fold_biases), directory)
                    flatbuffer = lce.convert_saved_model(directory, **lce_kwargs)
        else:
            flatbuffer = lce.convert_keras_model(fold_scales(model, fold_biases=fold_biases),
                                                 **lce_kwargs)
    except Exception as err:  # noqa: BLE001 - the converter raises many types
        raise BnnError(f"LCE cannot convert model {model.name!r}: "
                       f"{first_line(err, limit=300)}") from None
    # The converter lets ops it does not know through as custom ops; nothing runs them.
    unknown = sorted({op for op in op_counts(flatbuffer)
                      if not op.isupper() and op not in LCE_CUSTOM_OPS})
    if unknown:
        raise BnnError(f"LCE cannot convert model {model.name!r}: ops with no TFLite or LCE "
                       f"kernel: {', '.join(unknown)}")
    return flatbuffer
