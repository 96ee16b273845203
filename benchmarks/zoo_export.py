"""The zoo table: every model and variant converted with LCE, checked and timed.

For each model and variant: build it untrained, set its BatchNorm statistics from the
sample inputs (``--no-calibrate-bn`` keeps the initial ones), convert with
:func:`bnn_keras.export.convert` and check the flatbuffer with
:func:`bnn_keras.export.check_deployable` (every binary conv an ``LceBconv2d``, no float
conv or Dense left for a binary layer, no float ``MUL`` into a binarizer, no padding
correction the model does not ask for, top-1 agreement with Keras on random inputs or
every differing input traced to float rounding). One row per pair: total parameters, the
share of them that is binary, OPs (``binary MACs / 64 + float MACs``), ``.tflite`` size,
the verdict, LCE's x86 interpreter latency at one thread (``--no-latency`` skips it; off
ARM the interpreter runs reference kernels, so it compares models with each other, not
with a board), and the official repositories whose checkpoints of that network
``bnn_keras.models.import_torch`` reads, as ``tests/test_official.py`` checks them
against the official code (one fixture in ``tests/data/official`` each).

Usage::

    python benchmarks/zoo_export.py                         # every model, 224x224x3
    python benchmarks/zoo_export.py --input-shape 32,32,3 --num-classes 10 \
        --models reactnet_18,lqz_quicknet_small --markdown
    python benchmarks/zoo_export.py --json zoo_export.json  # also write the rows

Exit status 1 if any row is not deployable. Conversion is slow for the large models
(minutes each at 224 on a laptop CPU).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import bnn_keras  # noqa: F401  (sets the Keras environment before TensorFlow loads)
from bnn_keras.official_fixtures import fixture_names


def official_sources(name: str, variant: str) -> list[str]:
    """The official repositories (``owner/name``) with a checkpoint fixture of ``name``
    ``variant``: the sources ``import_torch`` reads for it, checked against their code."""
    from bnn_keras.models.torch_keys import source_for

    found = []
    for fixture in fixture_names():  # "<source>-<model>-<variant>"
        source, model, fixture_variant = fixture.split("-")
        if (model, fixture_variant) == (name, variant):
            found.append(source_for(model, source).repository)
    return sorted(found)


def export_row(name: str, variant: str, input_shape: tuple[int, int, int], num_classes: int,
               samples: int, *, seed: int = 0, calibrate: bool = True, trace: bool = True,
               min_agreement: float = 0.99, latency_runs: int = 20) -> dict:
    """Build, convert, check and time one model; the row as a dict. ``calibrate`` sets the
    BN moving statistics from the sample inputs first
    (:func:`bnn_keras.export.calibrate_batchnorm`); ``trace`` lets the agreement check
    trace differing inputs to rounding; ``latency_runs=0`` skips the timing."""
    import tf_keras as keras

    from bnn_keras import export, models
    from bnn_keras.bench.local import benchmark_flatbuffer

    start = time.perf_counter()
    model = models.create(name, variant, num_classes=num_classes, input_shape=input_shape)
    stats = models.model_stats(model)
    inputs = np.random.default_rng(seed).standard_normal(
        (samples, *input_shape)).astype(np.float32)
    if calibrate:
        export.calibrate_batchnorm(model, inputs)
    flatbuffer = export.convert(model)
    result = export.check_deployable(model, flatbuffer, inputs, min_agreement=min_agreement,
                                     trace=trace)
    counts = export.op_counts(flatbuffer)
    row = {
        "model": name,
        "variant": variant,
        "total_params": stats.total_params,
        "binary_params": stats.binary_params,
        "binary_share": stats.binary_params / stats.total_params,
        "ops": stats.ops,
        "tflite_mb": len(flatbuffer) / 2**20,
        "deployable": result.ok,
        "float_op_types": {op: n for op, n in sorted(counts.items())
                           if op not in export.LCE_CUSTOM_OPS},
        **result.as_dict(),
        "latency_ms": None,
        "official_sources": official_sources(name, variant),
    }
    if latency_runs:
        row["latency_ms"] = benchmark_flatbuffer(flatbuffer, threads=1,
                                                 runs=latency_runs).median_ms
    row["seconds"] = time.perf_counter() - start
    del model
    keras.backend.clear_session()
    return row


COLUMNS = ("model", "variant", "params", "binary", "OPs", "tflite MB", "deployable",
           "ms (x86, 1 thread)", "official checkpoints")


def _cells(row: dict) -> tuple[str, ...]:
    latency = "-" if row["latency_ms"] is None else f"{row['latency_ms']:.1f}"
    return (row["model"], row["variant"], f"{row['total_params'] / 1e6:.1f}M",
            f"{row['binary_share']:.1%}", f"{row['ops'] / 1e8:.2f}e8",
            f"{row['tflite_mb']:.2f}", "yes" if row["deployable"] else "NO", latency,
            ", ".join(row["official_sources"]) or "-")


def format_table(rows: list[dict], markdown: bool = False) -> str:
    """The rows as a plain-text table, or a markdown one."""
    cells = [COLUMNS] + [_cells(r) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(c) + " |" for c in cells]
        lines.insert(1, "|" + "|".join("---" for _ in COLUMNS) + "|")
        return "\n".join(lines)
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(c, widths)) for c in cells)


def _row_details(row: dict) -> list[str]:
    lines = [f"    {f['check']}: {f['detail']}" for f in row["findings"] if not f["ok"]]
    for d in row["divergences"]:
        lines.append(f"    input {d['sample']}: " + (
            "every binarizer input agrees; differs after the last"
            if d["layer"] is None else
            f"diverges at {d['layer']}: {d['flips']} sign flip(s), "
            f"|x| <= {d['flip_max_abs']:.2g}, |diff| <= {d['max_abs_diff']:.2g} "
            f"(std {d['std']:.3g}); before it |diff| <= "
            f"{d['before_max_abs_diff']:.2g} (std {d['before_std']:.3g})")
            + (": rounding" if d["rounding"] else ": NOT rounding"))
    return lines


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from bnn_keras import models
    from bnn_keras.files import atomic_write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="", help="comma-separated names (default: all)")
    parser.add_argument("--variants", default="", help="comma-separated (default: all)")
    parser.add_argument("--input-shape", default="224,224,3", help="H,W,C")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=8, help="inputs for the agreement")
    parser.add_argument("--min-agreement", type=float, default=0.99)
    parser.add_argument("--runs", type=int, default=20, help="timed interpreter runs")
    parser.add_argument("--no-latency", dest="latency", action="store_false",
                        help="do not time the interpreter")
    parser.add_argument("--markdown", action="store_true",
                        help="print the table in markdown at the end")
    parser.add_argument("--json", default="", help="also write the rows to this file")
    parser.add_argument("--no-trace", dest="trace", action="store_false",
                        help="do not trace differing inputs to rounding")
    parser.add_argument("--no-calibrate-bn", dest="calibrate", action="store_false",
                        help="keep BN's initial statistics (untrained BN nets then do not "
                             "normalise, and their logits can reach 1e8)")
    args = parser.parse_args(argv)

    shape = tuple(int(v) for v in args.input_shape.split(","))
    names = [n for n in args.models.split(",") if n] or models.names()
    wanted = {v for v in args.variants.split(",") if v}
    print(f"zoo export at {'x'.join(map(str, shape))}, {args.num_classes} classes", flush=True)
    rows = []
    for name in names:
        for variant in models.get(name).variants:
            if wanted and variant not in wanted:
                continue
            row = export_row(name, variant, shape, args.num_classes, args.samples,
                             calibrate=args.calibrate, trace=args.trace,
                             min_agreement=args.min_agreement,
                             latency_runs=args.runs if args.latency else 0)
            rows.append(row)
            print(format_table([row]).splitlines()[1] + f"  ({row['seconds']:.0f} s)",
                  flush=True)
            for line in _row_details(row):
                print(line, flush=True)
            if args.json:  # after every row: a crash on a large model keeps the others
                atomic_write_json(args.json, {"input_shape": shape,
                                              "num_classes": args.num_classes, "rows": rows})
    print(format_table(rows, markdown=args.markdown))
    failed = sum(not r["deployable"] for r in rows)
    print(f"{len(rows) - failed}/{len(rows)} deployable")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
