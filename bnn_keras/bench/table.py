"""Benchmark results as rows: a text table, CSV, JSON and a latency-versus-accuracy plot."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path


@dataclass
class BenchRow:
    """One model at one thread count, measured locally or on a board; times in ms."""

    model: str
    target: str
    runner: str
    threads: int
    runs: int
    avg_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    median_ms: float | None = None
    first_ms: float | None = None
    init_ms: float | None = None
    peak_memory_mb: float | None = None
    size_bytes: int | None = None
    accuracy: float | None = None
    float_avg_ms: float | None = None
    float_size_bytes: int | None = None

    @property
    def speedup(self) -> float | None:
        """Float-baseline latency over binary latency."""
        if self.float_avg_ms is None or not self.avg_ms:
            return None
        return self.float_avg_ms / self.avg_ms

    @property
    def size_ratio(self) -> float | None:
        """Float-baseline size over binary size."""
        if self.float_size_bytes is None or not self.size_bytes:
            return None
        return self.float_size_bytes / self.size_bytes

    def as_dict(self) -> dict:
        """Every field plus ``mean_ms`` (= ``avg_ms``), ``speedup`` and ``size_ratio``."""
        data = asdict(self)
        data.update(mean_ms=self.avg_ms, speedup=self.speedup, size_ratio=self.size_ratio)
        return data


def row_from_latency(model: str, latency, *, size_bytes: int | None = None,
                     runner: str = "lce-interpreter") -> BenchRow:
    """A local :class:`~bnn_keras.bench.local.Latency` as a row."""
    return BenchRow(model=model, target="local", runner=runner, threads=latency.threads,
                    runs=latency.runs, avg_ms=latency.mean_ms, min_ms=latency.min_ms,
                    max_ms=latency.max_ms, std_ms=latency.std_ms, median_ms=latency.median_ms,
                    first_ms=latency.first_ms, init_ms=latency.init_ms, size_bytes=size_bytes)


def row_from_output(model: str, target: str, runner: str, threads: int, output,
                    *, size_bytes: int | None = None) -> BenchRow:
    """A parsed :class:`~bnn_keras.bench.parse.BenchmarkOutput` as a row."""
    ms = 1e-3
    return BenchRow(model=model, target=target, runner=runner,
                    threads=output.num_threads or threads, runs=output.count,
                    avg_ms=output.inference_avg_us * ms, min_ms=output.min_us * ms,
                    max_ms=output.max_us * ms, std_ms=output.std_us * ms,
                    median_ms=None if output.median_us is None else output.median_us * ms,
                    first_ms=output.first_inference_us * ms, init_ms=output.init_us * ms,
                    peak_memory_mb=output.peak_memory_mb if output.peak_memory_mb is not None
                    else output.memory_overall_mb, size_bytes=size_bytes)


def known_accuracy(tflite: str | os.PathLike) -> float | None:
    """The accuracy recorded for a ``.tflite``: its ``<stem>.report.json`` (dataset check
    of ``bnn-keras export --dataset``) or the run folder's ``metrics.json`` (the
    ``.tflite`` test accuracy, else the Keras test accuracy)."""
    path = Path(tflite)
    candidates = [(path.with_name(f"{path.stem}.report.json"), ("split_check", "tflite_accuracy")),
                  (path.parent / "metrics.json", ("export", "tflite_test_accuracy")),
                  (path.parent / "metrics.json", ("test_accuracy",))]
    for file, keys in candidates:
        try:
            value = json.loads(file.read_text())
            for key in keys:
                value = value[key]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return None


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(rows: list[BenchRow]) -> str:
    """A fixed-width text table; float-baseline and accuracy columns only when known."""
    cols = [("model", lambda r: r.model), ("target", lambda r: r.target),
            ("runner", lambda r: r.runner), ("threads", lambda r: str(r.threads)),
            ("avg ms", lambda r: _fmt(r.avg_ms, ".2f")),
            ("min ms", lambda r: _fmt(r.min_ms, ".2f")),
            ("max ms", lambda r: _fmt(r.max_ms, ".2f")),
            ("std ms", lambda r: _fmt(r.std_ms, ".2f")),
            ("size KiB", lambda r: _fmt(None if r.size_bytes is None else r.size_bytes / 1024,
                                        ".1f"))]
    if any(r.peak_memory_mb is not None for r in rows):
        cols.append(("peak MB", lambda r: _fmt(r.peak_memory_mb, ".1f")))
    if any(r.accuracy is not None for r in rows):
        cols.append(("accuracy", lambda r: _fmt(r.accuracy, ".2%")))
    if any(r.float_avg_ms is not None for r in rows):
        cols += [("float ms", lambda r: _fmt(r.float_avg_ms, ".2f")),
                 ("float/bin time", lambda r: _fmt(r.speedup, ".2f")),
                 ("float/bin size", lambda r: _fmt(r.size_ratio, ".2f"))]
    cells = [[name for name, _ in cols]] + [[get(r) for _, get in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_csv(rows: list[BenchRow]) -> str:
    """CSV with a header (every field, plus ``speedup`` and ``size_ratio``)."""
    names = [f.name for f in fields(BenchRow)] + ["speedup", "size_ratio"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.as_dict().items()})
    return out.getvalue()


def plot_latency_accuracy(rows: list[BenchRow], path: str | os.PathLike) -> int:
    """Latency (x) versus accuracy (y), one point per row with a known accuracy, one
    marker per thread count; returns the number of points drawn (0: nothing written)."""
    points = [r for r in rows if r.accuracy is not None]
    if not points:
        return 0
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bnn_keras.files import atomic_write_bytes, figure_png

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    markers = "osD^v<>p*"
    for i, threads in enumerate(sorted({r.threads for r in points})):
        sel = [r for r in points if r.threads == threads]
        ax.scatter([r.avg_ms for r in sel], [100 * r.accuracy for r in sel],
                   marker=markers[i % len(markers)], label=f"{threads} thread(s)")
        for r in sel:
            p = Path(r.model)
            label = p.parent.name if p.stem == "model" and p.parent.name else p.stem
            ax.annotate(label, (r.avg_ms, 100 * r.accuracy), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    targets = sorted({r.target for r in points})
    ax.set_xlabel("latency, mean of timed runs (ms)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"latency versus accuracy ({', '.join(targets)})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        png = figure_png(fig, dpi=120)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, png)  # never a truncated PNG under the final name
    return len(points)
