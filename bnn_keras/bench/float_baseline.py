"""The float baseline: the same architecture with every quantizer removed, converted with
``tf.lite.TFLiteConverter`` and run with TFLite's XNNPACK delegate.

Binary convs (larq ``QuantConv2D`` and its subclasses, e.g. ``ScaledStdQuantConv2D``)
become plain ``Conv2D`` layers of the same shape (zero "same" padding), weight-
standardised float convs become plain ``Conv2D`` (what their deployed form is), larq's
``QuantDense`` / ``QuantDepthwiseConv2D`` become ``Dense`` / ``DepthwiseConv2D``. Every
other layer is kept. Weights are copied where the shapes agree (latency does not depend
on them).
"""

from __future__ import annotations

import errno
import os
import tempfile

import tf_keras as keras

from bnn_keras.bench.local import Latency, benchmark_flatbuffer
from bnn_keras.errors import BnnError, first_line

_PLAIN = (keras.layers.DepthwiseConv2D, keras.layers.Conv2D, keras.layers.Dense)


def _plain_class(layer: keras.layers.Layer) -> type | None:
    for cls in _PLAIN:
        if isinstance(layer, cls):
            return None if type(layer) is cls else cls
    return None


def _plain_layer(layer: keras.layers.Layer, cls: type) -> keras.layers.Layer:
    """``layer`` as a plain ``cls``, keeping the config keys ``cls`` knows (larq's
    quantizers, constraints and pad values are dropped)."""
    known = set((cls(1) if cls is not keras.layers.Conv2D else cls(1, 1)).get_config())
    return cls.from_config({k: v for k, v in layer.get_config().items() if k in known})


def float_model(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with binary and weight-standardised layers made plain float."""

    def clone(layer):
        cls = _plain_class(layer)
        if cls is None:
            return layer.__class__.from_config(layer.get_config())
        return _plain_layer(layer, cls)

    try:
        floated = keras.models.clone_model(model, clone_function=clone)
    except Exception as err:  # noqa: BLE001
        raise BnnError(f"cannot build the float baseline of {model.name!r}: "
                       f"{first_line(err)}") from None
    for src, dst in zip(model.layers, floated.layers):
        weights = src.get_weights()
        target = dst.get_weights()
        if len(weights) == len(target) and all(a.shape == b.shape
                                               for a, b in zip(weights, target)):
            dst.set_weights(weights)
    return floated


def float_flatbuffer(model: keras.Model) -> bytes:
    """The float baseline of ``model`` as a ``.tflite`` (``tf.lite.TFLiteConverter``, from
    the one-signature SavedModel of :func:`bnn_keras.export.convert.save_inference_graph`)."""
    import tensorflow as tf

    from bnn_keras.export import save_inference_graph

    floated = float_model(model)
    try:
        with tempfile.TemporaryDirectory(prefix="bnn-keras-float-") as directory:
            save_inference_graph(floated, directory)
            return tf.lite.TFLiteConverter.from_saved_model(directory).convert()
    except Exception as err:  # noqa: BLE001
        if disk_full(err):
            raise BnnError(f"the temporary folder {tempfile.gettempdir()} is full: the float "
                           "baseline's SavedModel cannot be written there (free some space, "
                           "or point TMPDIR to a folder with room)") from None
        raise BnnError(f"TFLite cannot convert the float baseline of {model.name!r}: "
                       f"{first_line(err)}") from None


def disk_full(err: BaseException) -> bool:
    """Whether ``err`` says a file system ran out of space (Python's ``OSError`` or
    TensorFlow's own file errors, which carry only the message)."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(text in str(err) for text in (os.strerror(errno.ENOSPC),
                                             os.strerror(errno.EDQUOT)))


def benchmark_float_baseline(model: keras.Model, *, threads: int = 1, runs: int = 50,
                             warmup: int = 5) -> tuple[Latency, int]:
    """Latency of the float baseline with XNNPACK, and its ``.tflite`` size in bytes."""
    flatbuffer = float_flatbuffer(model)
    latency = benchmark_flatbuffer(flatbuffer, threads=threads, runs=runs, warmup=warmup,
                                   use_xnnpack=True)
    return latency, len(flatbuffer)
