"""Deployment figures for the model zoo at 224x224 (untrained weights; sizes, op mix and
latency do not depend on them).

For each model: the LCE ``.tflite`` size, its size over the ideal size (1-bit weights / 8
+ other weights x 4 bytes), the share of MACs in binary ops, the local latency with LCE's
interpreter, the latency of the float baseline (same architecture without quantizers,
TFLite + XNNPACK) and the ratio float / binary. Slow: every model is converted twice.

Off ARM, LCE's binary kernels are not the optimised ARM ones, so the local ratio
understates what a board shows; measure on the board with ``bnn-keras bench --ssh``.

    python benchmarks/deploy_report.py                       # every registered model
    python benchmarks/deploy_report.py --models reactnet_18 --threads 1,4 --json out.json
"""

from __future__ import annotations

import argparse
import sys
import time

import bnn_keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from bnn_keras import models
from bnn_keras.bench.float_baseline import float_flatbuffer
from bnn_keras.bench.local import benchmark_flatbuffer
from bnn_keras.errors import BnnError, first_line
from bnn_keras.export import binary_conv_layers, convert, mac_figures, op_counts, size_figures
from bnn_keras.files import atomic_write_json

COLUMNS = [("model", "{}"), ("variant", "{}"), ("threads", "{}"), ("tflite MiB", "{:.2f}"),
           ("size/ideal", "{:.2f}"), ("binary MACs", "{:.1%}"), ("LceBconv2d", "{}"),
           ("LCE ms", "{:.2f}"), ("float ms", "{:.2f}"), ("float/LCE", "{:.2f}"),
           ("float MiB", "{:.2f}")]


def measure(name: str, size: int, threads: list[int], runs: int, warmup: int) -> list[dict]:
    """Figures for model ``name`` at ``size`` x ``size``, one dict per thread count."""
    variant = models.get(name).default_variant
    model = models.create(name, variant, num_classes=1000, input_shape=(size, size, 3))
    flatbuffer = convert(model)
    stats = models.model_stats(model)
    sizes = size_figures(stats, len(flatbuffer))
    macs = mac_figures(stats)
    ops = op_counts(flatbuffer)
    float_fb = float_flatbuffer(model)
    rows = []
    for n in threads:
        lce = benchmark_flatbuffer(flatbuffer, threads=n, runs=runs, warmup=warmup)
        base = benchmark_flatbuffer(float_fb, threads=n, runs=runs, warmup=warmup,
                                    use_xnnpack=True)
        rows.append({
            "model": name, "variant": variant, "input_size": size, "threads": n,
            "tflite_bytes": len(flatbuffer), "tflite MiB": len(flatbuffer) / 2**20,
            "ideal_bytes": sizes.ideal_bytes, "size/ideal": sizes.size_over_ideal,
            "binary MACs": macs["binary_mac_share"], "binary_macs": macs["binary_macs"],
            "float_macs": macs["float_macs"],
            "LceBconv2d": f"{ops.get('LceBconv2d', 0)}/{len(binary_conv_layers(model))}",
            "LCE ms": lce.mean_ms, "float ms": base.mean_ms,
            "float/LCE": base.mean_ms / lce.mean_ms,
            "float_bytes": len(float_fb), "float MiB": len(float_fb) / 2**20,
        })
    return rows


def format_rows(rows: list[dict]) -> str:
    """A fixed-width table of ``rows`` (failed models show their error)."""
    cells = [[c for c, _ in COLUMNS]]
    for row in rows:
        if "error" in row:
            cells.append([row["model"], "-", f"error: {row['error']}"] + [""] * (len(COLUMNS) - 3))
            continue
        cells.append([fmt.format(row[c]) for c, fmt in COLUMNS])
    widths = [max(len(r[i]) for r in cells if not r[2].startswith("error")) for i in
              range(len(COLUMNS))]
    lines = []
    for i, r in enumerate(cells):
        if r[2].startswith("error"):
            lines.append(f"{r[0].ljust(widths[0])}  {r[2]}")
            continue
        lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                               for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table; 1 if any model failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(models.names()),
                        help="comma-separated model names [default: every registered model]")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--threads", default="1", help="thread counts, e.g. 1,4")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", dest="json_path", default=None,
                        help="also write JSON here (rewritten after every model)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    threads = [int(t) for t in args.threads.split(",")]
    rows: list[dict] = []
    for name in names:
        start = time.time()
        try:
            rows += measure(name, args.input_size, threads, args.runs, args.warmup)
        except BnnError as err:
            rows.append({"model": name, "error": str(err)})
        except Exception as err:  # noqa: BLE001 - report it and go on with the next model
            first = first_line(err) if str(err).strip() else ""
            rows.append({"model": name, "error": f"{type(err).__name__}: {first}"})
        last = rows[-1]
        summary = (f"error: {last['error']}" if "error" in last else
                   f"{last['tflite MiB']:.2f} MiB, {last['size/ideal']:.2f}x ideal, "
                   f"LCE {last['LCE ms']:.1f} ms, float {last['float ms']:.1f} ms")
        print(f"{name}: {summary} ({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
        if args.json_path:  # after every model: a crash (OOM on a large one) keeps the rest
            atomic_write_json(args.json_path, rows)
    print(f"LCE .tflite vs float TFLite (XNNPACK) at {args.input_size}x{args.input_size}, "
          f"local CPU, {args.runs} runs")
    print(format_rows(rows))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
