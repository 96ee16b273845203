"""The deployment report written beside an exported ``.tflite``.

It answers three questions: is the flatbuffer the model that was trained (top-1
agreement with Keras, and accuracy on a dataset split next to Keras' accuracy), is it as
binary as it can be (ops by type, binary convs lowered, the share of MACs in binary
ops) and is it as small as it can be (size against the ideal size: binary weights at one
bit, every other weight at its own width).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.export.convert import ExportReport, export_model, predict_tflite
from bnn_keras.io import atomic_write_json
from bnn_keras.models.stats import ModelStats, model_stats

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
class SplitCheck:
    """The ``.tflite`` and the Keras model on the same dataset split."""

    dataset: str
    split: str
    samples: int
    keras_accuracy: float
    tflite_accuracy: float
    top1_agreement: float

    def as_dict(self) -> dict:
        """The figures as a plain dict."""
        return asdict(self)


def split_arrays(dataset: str, split: str = "test", max_samples: int | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of a split of ``bnn_keras.data.load(dataset)``."""
    from bnn_keras import data

    if split not in ("test", "train"):
        raise BnnError(f"split must be 'test' or 'train', got {split!r}")
    x, y = data.to_arrays(getattr(data.load(dataset), split), max_samples)
    return x.astype(np.float32), y


def check_split(model: keras.Model, flatbuffer: bytes, x: np.ndarray, y: np.ndarray, *,
                dataset: str = "", split: str = "") -> SplitCheck:
    """Accuracy of Keras and of the flatbuffer (LCE's interpreter) on ``x, y``."""
    expected = tuple(int(d) for d in model.input_shape[1:])
    if tuple(x.shape[1:]) != expected:
        raise BnnError(f"the model takes inputs of shape {expected} but {dataset or 'the data'}"
                       f" has {tuple(x.shape[1:])}")
    keras_pred = np.argmax(model.predict(x, batch_size=64, verbose=0), -1)
    tflite_pred = np.argmax(predict_tflite(flatbuffer, x).reshape(len(x), -1), -1)
    y = np.asarray(y).reshape(-1)
    return SplitCheck(dataset=dataset, split=split, samples=len(x),
                      keras_accuracy=float(np.mean(keras_pred == y)),
                      tflite_accuracy=float(np.mean(tflite_pred == y)),
                      top1_agreement=float(np.mean(keras_pred == tflite_pred)))


@dataclass
class DeployReport:
    """:class:`ExportReport` plus the size, MAC and dataset figures."""

    export: ExportReport
    size: SizeFigures
    macs: dict
    int8_range: tuple[float, float] | None = None
    split_check: SplitCheck | None = None
    report_path: str | None = None

    @property
    def ok(self) -> bool:
        """No problem found (see :attr:`ExportReport.ok`)."""
        return self.export.ok

    @property
    def problems(self) -> list[str]:
        """What failed the export checks."""
        return self.export.problems

    def as_dict(self) -> dict:
        """The export report's dict with the size, MAC, int8 and dataset figures."""
        data = self.export.as_dict()
        data.update(
            ops_total=sum(self.export.ops.values()),
            size=self.size.as_dict(), ideal_size_bytes=self.size.ideal_bytes,
            size_over_ideal=self.size.size_over_ideal, **self.macs,
            int8_range=list(self.int8_range) if self.int8_range else None,
            agreement_enforced=self.int8_range is None,
            split_check=self.split_check.as_dict() if self.split_check else None,
        )
        return data

    def format(self) -> str:
        """The human-readable report."""
        lines = [self.export.format()]
        s = self.size
        lines.append(f"size {s.size_bytes / 1024:.1f} KiB, ideal {s.ideal_bytes / 1024:.1f} KiB "
                     f"({s.binary_params:,} 1-bit weights / 8 + {s.other_params:,} other "
                     f"weights x {s.other_param_bytes} B): {s.size_over_ideal:.2f}x the ideal")
        lines.append(f"binary MACs: {self.macs['binary_mac_share']:.1%} of all MACs "
                     f"({self.macs['binary_macs']:,} binary, {self.macs['float_macs']:,} float)")
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
        return "\n".join(lines)


def default_report_path(tflite: str | os.PathLike) -> Path:
    """``model.tflite`` -> ``model.report.json`` beside it."""
    tflite = Path(tflite)
    return tflite.with_name(f"{tflite.stem}.report.json")


def export_with_report(model: keras.Model, output: str | os.PathLike, *,
                       report_path: str | os.PathLike | None = None,
                       int8_range: tuple[float, float] | None = None,
                       dataset: str | None = None, split: str = "test",
                       max_samples: int | None = None, num_samples: int = 32,
                       min_agreement: float = 0.99) -> DeployReport:
    """Export ``model`` (see :func:`bnn_keras.export.export_model`) and write the JSON
    report beside the ``.tflite`` (``report_path`` or ``<stem>.report.json``).

    With ``dataset``, the agreement is measured on that split's images and the split's
    accuracy of both models is reported. With ``int8_range`` (LCE's
    ``experimental_default_int8_range``) a warning is issued and the agreement is
    reported but not enforced.
    """
    lce_kwargs = {}
    if int8_range is not None:
        low, high = (float(v) for v in int8_range)
        if not low < high:
            raise BnnError(f"int8 range must be MIN,MAX with MIN < MAX, got {int8_range!r}")
        int8_range = (low, high)
        lce_kwargs["experimental_default_int8_range"] = int8_range
        warnings.warn(INT8_WARNING, UserWarning, stacklevel=2)
    x = y = None
    if dataset:
        x, y = split_arrays(dataset, split, max_samples)
        expected = tuple(int(d) for d in model.input_shape[1:])
        if tuple(x.shape[1:]) != expected:
            raise BnnError(f"the model takes inputs of shape {expected} but the {dataset} "
                           f"dataset has {tuple(x.shape[1:])}")
    report = export_model(model, output, x, num_samples=num_samples,
                          min_agreement=0.0 if int8_range else min_agreement,
                          lce_kwargs=lce_kwargs)
    report.min_agreement = min_agreement
    flatbuffer = Path(report.path).read_bytes()
    stats = model_stats(model)
    deploy = DeployReport(export=report,
                          size=size_figures(stats, report.size_bytes, int8=bool(int8_range)),
                          macs=mac_figures(stats), int8_range=int8_range)
    if dataset:
        deploy.split_check = check_split(model, flatbuffer, x, y, dataset=dataset, split=split)
    path = Path(report_path) if report_path else default_report_path(report.path)
    deploy.report_path = str(atomic_write_json(path, deploy.as_dict()))
    return deploy
