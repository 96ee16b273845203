"""The export: one function, :func:`export_model`, for ``bnn-keras export`` and for the
end of a training run.

It converts the model once, writes the flatbuffer, checks the bytes it holds (never
reading the file back) with :func:`~bnn_keras.export.check_deployable` (one run of
Keras and of LCE's interpreter over the inputs) and writes an :class:`ExportReport` as
JSON beside the ``.tflite`` (``<stem>.report.json``): is the flatbuffer the model that
was trained (top-1 agreement with Keras and, on a labelled split, both accuracies), is
it as binary as it can be (ops by type, the deployability findings, the share of MACs in
binary ops) and is it as small as it can be (size against the ideal size: binary
weights at one bit, every other weight at its own width).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.export.check import Agreement, Finding, SplitCheck, check_deployable
from bnn_keras.export.convert import convert_float32
from bnn_keras.export.flatbuffer import op_counts
from bnn_keras.export.fold import binary_conv_layers
from bnn_keras.export.int8 import check_io_types, with_io_types
from bnn_keras.export.sign_trace import Divergence
from bnn_keras.files import atomic_write_bytes, atomic_write_json
from bnn_keras.models.dtypes import float32_model
from bnn_keras.models.stats import ModelStats, model_stats
from bnn_keras.quantize.ptq import CalibrationCost, PostTraining

__all__ = ["INT8_WARNING", "ExportReport", "LabelledSplit", "SizeFigures",
           "default_report_path", "export_model", "mac_figures", "size_figures"]

INT8_WARNING = ("--int8-range quantizes every tensor without a recorded range to int8 with "
                "one fixed (dummy) range: accuracy is not meaningful, use the file for "
                "latency studies only")


@dataclass
class SizeFigures:
    """The flatbuffer's size against the ideal size of the same weights."""

    size_bytes: int
    ideal_bytes: float
    binary_params: int
    other_params: int
    other_param_bytes: int

    @property
    def size_over_ideal(self) -> float:
        """Flatbuffer size divided by the ideal size."""
        return self.size_bytes / self.ideal_bytes if self.ideal_bytes else float("inf")

    def as_dict(self) -> dict:
        """The figures as a plain dict, with ``size_over_ideal``."""
        return {**asdict(self), "size_over_ideal": self.size_over_ideal}


def size_figures(stats: ModelStats, size_bytes: int, *, int8: bool = False) -> SizeFigures:
    """Ideal size from a model's :class:`~bnn_keras.models.ModelStats`: 1-bit weights / 8
    + every other weight x its bytes (4 for float32, 1 when ``int8`` because the export
    quantized the float weights)."""
    per_param = 1 if int8 else 4
    other = stats.total_params - stats.binary_params
    ideal = stats.binary_params / 8 + other * per_param
    return SizeFigures(size_bytes=size_bytes, ideal_bytes=ideal,
                       binary_params=stats.binary_params, other_params=other,
                       other_param_bytes=per_param)


def mac_figures(stats: ModelStats) -> dict:
    """Binary and float MACs (larq's profile) and the share of MACs in binary ops."""
    total = stats.binary_macs + stats.float_macs
    return {"binary_macs": stats.binary_macs, "float_macs": stats.float_macs,
            "binary_mac_share": stats.binary_macs / total if total else 0.0}


@dataclass
class ExportReport:
    """What an export wrote, whether it deploys as a BNN, and its size and MAC figures."""

    path: str
    size_bytes: int
    ops: dict[str, int]
    binary_convs: int
    lce_bconv2d: int
    size: SizeFigures
    macs: dict
    agreement: Agreement | None = None
    min_agreement: float = 0.99
    problems: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    divergences: list[Divergence] = field(default_factory=list)
    int8: bool = False  # an int8 + 1-bit flatbuffer (a quantization-aware model)
    input_type: str = "float32"
    output_type: str = "float32"
    int8_range: tuple[float, float] | None = None
    split_check: SplitCheck | None = None
    calibration: CalibrationCost | None = None  # what post-training int8 cost on the split
    report_path: str | None = None

    @property
    def all_lowered(self) -> bool:
        """Every binary conv is an ``LceBconv2d``."""
        return self.lce_bconv2d == self.binary_convs

    @property
    def ok(self) -> bool:
        """No finding of the deployability check failed."""
        return not self.problems

    def as_dict(self) -> dict:
        """The report as plain data (what the JSON file holds)."""
        data = asdict(self)
        for derived in ("size", "macs", "int8_range", "split_check", "calibration",
                        "report_path"):
            del data[derived]
        data["divergences"] = [asdict(d) | {"rounding": d.rounding} for d in self.divergences]
        data.update(
            all_lowered=self.all_lowered, ok=self.ok, ops_total=sum(self.ops.values()),
            size=self.size.as_dict(), ideal_size_bytes=self.size.ideal_bytes,
            size_over_ideal=self.size.size_over_ideal, **self.macs,
            int8_range=list(self.int8_range) if self.int8_range else None,
            agreement_enforced=self.int8_range is None,
            split_check=self.split_check.as_dict() if self.split_check else None,
            calibration=self.calibration.as_dict() if self.calibration else None,
        )
        return data

    def format(self) -> str:
        """The human-readable report."""
        lines = [f"wrote {self.path} ({self.size_bytes / 1024:.1f} KiB)"]
        if self.int8:
            lines.append(f"int8 + 1-bit: {self.input_type} input, {self.output_type} output")
        lines.append("ops:")
        lines += [f"  {name:<28} {count}" for name, count in sorted(self.ops.items())]
        verdict = "yes" if self.all_lowered else "NO"
        lines.append(f"binary convs lowered to LceBconv2d: {verdict} "
                     f"({self.lce_bconv2d} LceBconv2d for {self.binary_convs} binary convs)")
        if self.agreement:
            a = self.agreement
            lines.append(f"LCE interpreter vs Keras on {a.samples} inputs: top-1 agreement "
                         f"{a.top1_agreement:.2%}, max |diff| {a.max_abs_diff:.3g}")
        if self.findings:
            lines.append(f"deployable as a BNN: {'yes' if self.ok else 'NO'}")
            lines += [f"  {f.check:<17} {'ok' if f.ok else 'FAIL':<5} {f.detail}"
                      for f in self.findings]
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines + self._figure_lines())

    def _figure_lines(self) -> list[str]:
        s = self.size
        lines = [f"size {s.size_bytes / 1024:.1f} KiB, ideal {s.ideal_bytes / 1024:.1f} KiB "
                 f"({s.binary_params:,} 1-bit weights / 8 + {s.other_params:,} other "
                 f"weights x {s.other_param_bytes} B): {s.size_over_ideal:.2f}x the ideal",
                 f"binary MACs: {self.macs['binary_mac_share']:.1%} of all MACs "
                 f"({self.macs['binary_macs']:,} binary, {self.macs['float_macs']:,} float)"]
        if self.int8_range:
            lines.append(f"int8 range {self.int8_range}: agreement not enforced "
                         "(latency studies only)")
        if self.split_check:
            c = self.split_check
            lines.append(f"{c.dataset} {c.split} split ({c.samples} images): tflite accuracy "
                         f"{c.tflite_accuracy:.2%}, Keras accuracy {c.keras_accuracy:.2%}, "
                         f"top-1 agreement {c.top1_agreement:.2%}")
        if self.report_path:
            lines.append(f"report: {self.report_path}")
        return lines


@dataclass(frozen=True)
class LabelledSplit:
    """Labelled images an export is checked on: ``x``, ``y`` of ``dataset``'s ``split``."""

    dataset: str
    split: str
    x: np.ndarray
    y: np.ndarray

    @classmethod
    def load(cls, dataset: str, split: str = "test", limit: int | None = None,
             ) -> LabelledSplit:
        """All (or the first ``limit``) images and labels of a dataset's split."""
        from bnn_keras import data

        x, y = data.load(dataset).arrays(split, limit)
        return cls(dataset, split, x, y)


def default_report_path(tflite: str | os.PathLike) -> Path:
    """``model.tflite`` -> ``model.report.json`` beside it."""
    tflite = Path(tflite)
    return tflite.with_name(f"{tflite.stem}.report.json")


def _int8_kwargs(int8_range: tuple[float, float] | None) -> dict:
    """LCE's options for ``int8_range`` (``experimental_default_int8_range``), warning
    that the accuracy is then not meaningful."""
    if int8_range is None:
        return {}
    low, high = (float(v) for v in int8_range)
    if not low < high:
        raise BnnError(f"int8 range must be MIN,MAX with MIN < MAX, got {int8_range!r}")
    warnings.warn(INT8_WARNING, UserWarning, stacklevel=3)
    return {"experimental_default_int8_range": (low, high)}


def _check_inputs(model: keras.Model, labelled: LabelledSplit | None, num_samples: int,
                  seed: int) -> np.ndarray:
    """The labelled images (checked against the model's input), or standard-normal ones."""
    if labelled is not None:
        from bnn_keras.data import check_input_shape

        check_input_shape(model.input_shape[1:], labelled.x.shape[1:], model.name,
                          labelled.dataset or "the data")
        return labelled.x
    shape = tuple(int(d) for d in model.input_shape[1:])
    return np.random.default_rng(seed).standard_normal((num_samples, *shape)).astype(np.float32)


def export_model(model: keras.Model, output: str | os.PathLike,
                 labelled: LabelledSplit | None = None, *,
                 report_path: str | os.PathLike | None = None,
                 int8_range: tuple[float, float] | None = None, num_samples: int = 32,
                 min_agreement: float = 0.99, seed: int = 0, input_type: str = "float32",
                 output_type: str = "float32",
                 post_training: PostTraining | None = None) -> ExportReport:
    """Convert ``model`` once, write the flatbuffer to ``output`` atomically, check it and
    write the report as JSON (``report_path``, default ``<stem>.report.json`` beside it).

    The check runs on ``labelled``'s images, reporting both models' accuracy on them, or
    on ``num_samples`` standard-normal inputs. Failing findings are listed in the
    report's ``problems``, not raised; the files are written either way. With
    ``int8_range`` (LCE's ``experimental_default_int8_range``) a warning is issued and
    the agreement is reported but not enforced. A quantization-aware model's file reads
    ``input_type`` and writes ``output_type`` (``float32``, ``int8`` or ``uint8``; the
    checks run on its float32-input twin, the same ops inside) and its ideal size counts
    its other weights at one byte. A post-training int8 model (``post_training``, from
    :func:`~bnn_keras.quantize.ptq.post_training_int8`) checked on ``labelled`` has its
    cost in the report: its float model's top-1 on the same images beside the file's.

    Example:
        ```python
        report = export.export_model(net, "r18.tflite", export.LabelledSplit.load("digits"))
        assert report.ok, report.problems
        ```
    """
    from bnn_keras.quantize import is_quantized

    check_io_types(model, input_type, output_type)
    lce_kwargs = _int8_kwargs(int8_range)
    inputs = _check_inputs(model, labelled, num_samples, seed)
    # the float32 copy of a mixed-precision network, made once: converted and checked
    model = float32_model(model)
    flatbuffer = convert_float32(model, **lce_kwargs)  # checked as bytes: never read back
    deployed = with_io_types(flatbuffer, input_type, output_type)
    path = atomic_write_bytes(output, deployed)
    result = check_deployable(
        model, flatbuffer, inputs, labels=labelled.y if labelled else None,
        dataset=labelled.dataset if labelled else "", split=labelled.split if labelled else "",
        min_agreement=0.0 if lce_kwargs else min_agreement)
    counts, stats, int8 = op_counts(flatbuffer), model_stats(model), is_quantized(model)
    report = ExportReport(
        path=str(path), size_bytes=len(deployed), ops=dict(op_counts(deployed)),
        binary_convs=len(binary_conv_layers(model)), lce_bconv2d=counts.get("LceBconv2d", 0),
        size=size_figures(stats, len(deployed), int8=int8 or bool(lce_kwargs)),
        macs=mac_figures(stats), agreement=result.agreement, min_agreement=min_agreement,
        problems=result.problems, findings=result.findings, divergences=result.divergences,
        int8_range=lce_kwargs.get("experimental_default_int8_range"),
        split_check=result.split_check, int8=int8, input_type=input_type,
        output_type=output_type)
    if post_training and labelled is not None and result.split_check:
        report.calibration = post_training.cost(
            result.split_check.tflite_accuracy, labelled.x, labelled.y,
            dataset=labelled.dataset, split=labelled.split)
    report_path = Path(report_path) if report_path else default_report_path(path)
    report.report_path = str(atomic_write_json(report_path, report.as_dict()))
    return report
