"""Keras -> LCE flatbuffer, with the checks that make the export trustworthy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.export.flatbuffer import op_counts
from bnn_keras.export.fold import binary_conv_layers, fold_scales
from bnn_keras.io import atomic_write_bytes

LCE_CUSTOM_OPS = frozenset({"LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d"})


#: Models with fewer bytes of variables than this convert through a frozen GraphDef;
#: larger ones through a SavedModel. Measured at 32x32 on 2 cores: bnext_large at an
#: 8-channel stem (6 MB of weights) 15 s frozen against 38 s through a SavedModel;
#: bnext_tiny (115 MB) 16 s against 22 s; but bnext_large (1.2 GB) 186 s and 17.8 GB
#: frozen (freezing copies every weight into the GraphDef) against 105 s saved.
FROZEN_GRAPH_MAX_BYTES = 128 * 2**20


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
    every layer's call on its own; for our 100-500-layer nets that is more than half the
    conversion time. Tracing the model once and saving only that function and the
    variables gives the converter the same graph (same ops, same outputs) in half the time.
    """
    import tensorflow as tf

    module = tf.Module()
    module.weights = list(model.variables)  # tracked, so the SavedModel holds them
    # no gradient functions: the converter never reads them, and tracing larq's
    # custom-gradient quantizers for them cost bnext_middle 6 s of 26
    tf.saved_model.save(module, directory,
                        signatures={"serving_default": _inference_function(model)},
                        options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))


def _convert_frozen(model: keras.Model) -> bytes:
    """Freeze the inference function's variables into constants and convert the GraphDef
    with LCE's default options: the route ``lce.convert_keras_model`` falls back to
    (LCE 0.16's ``convert_graphdef_to_tflite_flatbuffer``), without writing a SavedModel.
    """
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


def convert(model: keras.Model, **lce_kwargs) -> bytes:
    """Convert with LCE after :func:`fold_scales`.

    Single-input, single-output models are traced once at batch size 1 and converted
    from a frozen GraphDef when their variables are under :data:`FROZEN_GRAPH_MAX_BYTES`
    and ``lce_kwargs`` is empty, otherwise through :func:`save_inference_graph` and
    ``larq_compute_engine.convert_saved_model`` (the two give the same ops and outputs);
    other models through ``larq_compute_engine.convert_keras_model``. ``lce_kwargs`` go
    to the converter.
    """
    import larq_compute_engine as lce

    try:
        if len(model.inputs) == 1 and len(model.outputs) == 1:
            if not lce_kwargs and _variable_bytes(model) < FROZEN_GRAPH_MAX_BYTES:
                flatbuffer = _convert_frozen(fold_scales(model))
            else:
                with tempfile.TemporaryDirectory() as directory:
                    # the folded copy is dropped before the converter runs: for
                    # bnext_large every copy of the weights is 1.2 GB
                    save_inference_graph(fold_scales(model), directory)
                    flatbuffer = lce.convert_saved_model(directory, **lce_kwargs)
        else:
            flatbuffer = lce.convert_keras_model(fold_scales(model), **lce_kwargs)
    except Exception as err:  # noqa: BLE001 - the converter raises many types
        msg = str(err).strip().splitlines()
        raise BnnError(f"LCE cannot convert model {model.name!r}: "
                       f"{msg[0][:300] if msg else type(err).__name__}") from None
    # The converter lets ops it does not know through as custom ops; nothing runs them.
    unknown = sorted({op for op in op_counts(flatbuffer)
                      if not op.isupper() and op not in LCE_CUSTOM_OPS})
    if unknown:
        raise BnnError(f"LCE cannot convert model {model.name!r}: ops with no TFLite or LCE "
                       f"kernel: {', '.join(unknown)}")
    return flatbuffer


@dataclass
class Agreement:
    """Keras versus LCE interpreter on the same inputs."""

    samples: int
    top1_agreement: float
    max_abs_diff: float
    disagreeing: list[int] = field(default_factory=list)  # indices whose top-1 differs


def predict_tflite(flatbuffer: bytes, inputs: np.ndarray) -> np.ndarray:
    """Outputs of LCE's interpreter, one input at a time (LCE models have batch size 1)."""
    interpreter = lce_interpreter(flatbuffer)
    return np.concatenate([interpreter.predict(inputs[i:i + 1]) for i in range(len(inputs))])


def lce_interpreter(flatbuffer: bytes):
    """LCE's interpreter on ``flatbuffer`` (up to 2 threads), or a one-line
    :class:`BnnError` when it cannot load it."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    try:
        return Interpreter(flatbuffer, num_threads=min(2, os.cpu_count() or 1))
    except Exception as err:  # noqa: BLE001
        raise BnnError(f"LCE's interpreter cannot load the model: "
                       f"{str(err).splitlines()[0][:200]}") from None


def compare(model: keras.Model, flatbuffer: bytes, inputs: np.ndarray) -> Agreement:
    """Run ``inputs`` through the Keras model and the flatbuffer (LCE's interpreter)."""
    inputs = np.asarray(inputs, dtype=np.float32)
    expected = model.predict(inputs, batch_size=64, verbose=0)
    got = predict_tflite(flatbuffer, inputs).reshape(expected.shape)
    same = np.argmax(got, -1) == np.argmax(expected, -1)
    return Agreement(
        samples=len(inputs),
        top1_agreement=float(np.mean(same)),
        max_abs_diff=float(np.max(np.abs(got - expected))),
        disagreeing=[int(i) for i in np.flatnonzero(~same)],
    )


@dataclass
class ExportReport:
    """What an export produced and whether it is deployable as a BNN."""

    path: str
    size_bytes: int
    ops: dict[str, int]
    binary_convs: int
    lce_bconv2d: int
    agreement: Agreement | None = None
    min_agreement: float = 0.99
    problems: list[str] = field(default_factory=list)

    @property
    def all_lowered(self) -> bool:
        return self.lce_bconv2d >= self.binary_convs

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        data = asdict(self)
        data["all_lowered"] = self.all_lowered
        data["ok"] = self.ok
        return data

    def format(self) -> str:
        lines = [f"wrote {self.path} ({self.size_bytes / 1024:.1f} KiB)", "ops:"]
        lines += [f"  {name:<28} {count}" for name, count in sorted(self.ops.items())]
        verdict = "yes" if self.all_lowered else "NO"
        lines.append(f"binary convs lowered to LceBconv2d: {verdict} "
                     f"({self.lce_bconv2d} LceBconv2d for {self.binary_convs} binary convs)")
        if self.agreement:
            a = self.agreement
            lines.append(f"LCE interpreter vs Keras on {a.samples} inputs: top-1 agreement "
                         f"{a.top1_agreement:.2%}, max |diff| {a.max_abs_diff:.3g}")
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines)


def export_model(model: keras.Model, output: str | os.PathLike,
                 sample_inputs: np.ndarray | None = None, *, num_samples: int = 32,
                 min_agreement: float = 0.99, seed: int = 0,
                 lce_kwargs: dict | None = None) -> ExportReport:
    """Convert ``model``, write the flatbuffer atomically and check it.

    Checks that every binary conv became ``LceBconv2d`` and that LCE's interpreter
    agrees with Keras on ``sample_inputs`` (standard-normal inputs when ``None``).
    Problems are listed in the report, not raised; the file is written either way.
    ``lce_kwargs`` go to the LCE converter (e.g. ``experimental_default_int8_range``).
    """
    flatbuffer = convert(model, **(lce_kwargs or {}))
    path = atomic_write_bytes(output, flatbuffer)
    counts = op_counts(flatbuffer)
    report = ExportReport(
        path=str(path), size_bytes=len(flatbuffer), ops=dict(counts),
        binary_convs=len(binary_conv_layers(model)), lce_bconv2d=counts.get("LceBconv2d", 0),
        min_agreement=min_agreement,
    )
    if not report.all_lowered:
        report.problems.append(f"{report.binary_convs - report.lce_bconv2d} binary conv(s) "
                               "did not lower to LceBconv2d")
    if sample_inputs is None:
        shape = tuple(int(d) for d in model.input_shape[1:])
        sample_inputs = np.random.default_rng(seed).standard_normal(
            (num_samples, *shape)).astype(np.float32)
    report.agreement = compare(model, flatbuffer, sample_inputs)
    if report.agreement.top1_agreement < min_agreement:
        report.problems.append(f"top-1 agreement {report.agreement.top1_agreement:.2%} is under "
                               f"the threshold {min_agreement:.2%}")
    return report


def read_flatbuffer(path: str | os.PathLike) -> bytes:
    """Read a ``.tflite`` file, with one-line errors for missing, non-model or damaged files
    (see :func:`~bnn_keras.export.flatbuffer.check_flatbuffer`)."""
    from bnn_keras.export.flatbuffer import check_flatbuffer

    path = Path(path)
    if not path.is_file():
        raise BnnError(f"model file not found: {path}")
    data = path.read_bytes()
    check_flatbuffer(data, str(path))
    return data


def _probe_argv(path: Path) -> list[str]:
    from bnn_keras.bench.remote import runner_script

    return [sys.executable, str(runner_script()), f"--graph={path}", "--num_threads=1",
            "--num_runs=1", "--warmup_runs=0", "--min_secs=0", "--warmup_min_secs=0"]


def probe_in_subprocess(path: str | os.PathLike, timeout: float = 600.0) -> None:
    """Build LCE's interpreter on the model file and run it once, in a child process.

    What :func:`read_flatbuffer`'s checks cannot see (a damaged body whose indices are
    all in range) may still crash the interpreter; in a child (the board runner, which
    needs no TensorFlow: about half a second) that crash becomes a one-line
    :class:`BnnError` instead of killing this process, and its temporary files with it.
    """
    try:
        proc = subprocess.run(_probe_argv(Path(path)), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace",
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BnnError(f"LCE's interpreter did not finish one run of {path} in "
                       f"{timeout:.0f} s") from None
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise BnnError(f"LCE's interpreter crashed on {path} ({name}): the file is damaged "
                       "or not a model it can run")
    if proc.returncode:
        errors = [line[len("ERROR: "):] for line in proc.stdout.splitlines()
                  if line.startswith("ERROR: ")] or ["exit status " + str(proc.returncode)]
        raise BnnError(f"LCE's interpreter cannot run {path}: {errors[0][:200]}")
