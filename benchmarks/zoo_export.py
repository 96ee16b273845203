"""Convert zoo models with LCE and check the deployed graph stays binary.

For each model and variant: build it untrained, set its BatchNorm statistics from the
sample inputs (``--no-calibrate-bn`` keeps the initial ones), convert with
:func:`bnn_keras.export.convert`, and print one row: tflite size, LceBconv2d count
against the model's binary convs, the float ops left (every op that is not an LCE op),
whether a float ``MUL`` feeds an ``LceQuantize``, and the LCE interpreter's top-1
agreement with Keras on random inputs. For each input whose top-1 differs, the first
binarizer whose signs differ between the runtimes and whether float rounding explains it
(:func:`bnn_keras.export.first_flips`, which reads every binarizer input out of the
flatbuffer).

Usage::

    python benchmarks/zoo_export.py                         # every model, 224x224x3
    python benchmarks/zoo_export.py --input-shape 32,32,3 --models reactnet_a,bnext_tiny
    python benchmarks/zoo_export.py --json zoo_export.json  # also write the rows

Exit status 1 if any row fails (a binary conv not lowered, a float MUL in front of a
binarizer, or agreement under ``--min-agreement`` with a differing input that rounding
does not explain). Conversion is slow for the large
models (minutes each at 224 on a laptop CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict

import numpy as np

import bnn_keras  # noqa: F401  (sets the Keras environment before TensorFlow loads)

FLOAT_FREE = frozenset({"LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d"})


def export_row(name: str, variant: str, input_shape: tuple[int, int, int], num_classes: int,
               samples: int, seed: int = 0, calibrate: bool = True,
               trace: bool = True) -> dict:
    """Build, convert and check one model; the row as a dict. ``calibrate`` sets the BN
    moving statistics from the sample inputs first
    (:func:`bnn_keras.export.calibrate_batchnorm`); ``trace`` locates, for each input
    whose top-1 differs, the first binarizer whose signs differ
    (:func:`bnn_keras.export.first_flips`)."""
    import tf_keras as keras

    from bnn_keras import export, models

    start = time.perf_counter()
    model = models.create(name, variant, num_classes=num_classes, input_shape=input_shape)
    inputs = np.random.default_rng(seed).standard_normal(
        (samples, *input_shape)).astype(np.float32)
    if calibrate:
        export.calibrate_batchnorm(model, inputs)
    flatbuffer = export.convert(model)
    counts = export.op_counts(flatbuffer)
    binary_convs = len(export.binary_conv_layers(model))
    producers = export.input_producers(flatbuffer, "LceQuantize")
    agreement = export.compare(model, flatbuffer, inputs)
    row = {
        "model": name,
        "variant": variant,
        "tflite_mb": len(flatbuffer) / 2**20,
        "binary_convs": binary_convs,
        "lce_bconv2d": counts.get("LceBconv2d", 0),
        "float_ops": sum(n for op, n in counts.items() if op not in FLOAT_FREE),
        "float_op_types": {op: n for op, n in sorted(counts.items()) if op not in FLOAT_FREE},
        "mul_into_binarizer": sum("MUL" in p for p in producers),
        "top1_agreement": agreement.top1_agreement,
        "max_abs_diff": agreement.max_abs_diff,
        "divergences": [],
    }
    if agreement.disagreeing and trace:  # where do the runtimes part, and why?
        row["divergences"] = [asdict(d) | {"rounding": d.rounding} for d in
                              export.first_flips(model, inputs, agreement.disagreeing,
                                                 flatbuffer=flatbuffer)]
    row["seconds"] = time.perf_counter() - start
    del model
    keras.backend.clear_session()
    return row


def row_ok(row: dict, min_agreement: float) -> bool:
    """Whether a row passes: all lowered, no MUL into a binarizer, and agreement high
    enough or every differing top-1 traced to rounding (see :func:`explained`)."""
    return (row["lce_bconv2d"] == row["binary_convs"] and row["mul_into_binarizer"] == 0
            and (row["top1_agreement"] >= min_agreement or explained(row)))


def explained(row: dict) -> bool:
    """Whether every input whose top-1 differs was traced to a sign flip that float
    rounding explains: the runtimes agree to 1e-4 of the tensor's std up to one
    binarizer, and the next one flips only elements within 1e-4 std of zero."""
    return bool(row["divergences"]) and all(d["rounding"] for d in row["divergences"])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from bnn_keras import models
    from bnn_keras.io import atomic_write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="", help="comma-separated names (default: all)")
    parser.add_argument("--variants", default="", help="comma-separated (default: all)")
    parser.add_argument("--input-shape", default="224,224,3", help="H,W,C")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=8, help="inputs for the agreement")
    parser.add_argument("--min-agreement", type=float, default=0.99)
    parser.add_argument("--json", default="", help="also write the rows to this file")
    parser.add_argument("--no-trace", dest="trace", action="store_false",
                        help="do not locate where differing inputs diverge")
    parser.add_argument("--no-calibrate-bn", dest="calibrate", action="store_false",
                        help="keep BN's initial statistics (untrained BN nets then do not "
                             "normalise, and their logits can reach 1e8)")
    args = parser.parse_args(argv)

    shape = tuple(int(v) for v in args.input_shape.split(","))
    names = [n for n in args.models.split(",") if n] or models.names()
    wanted = {v for v in args.variants.split(",") if v}
    header = (f"{'model':<20} {'variant':<7} {'tflite MB':>9} {'LceBconv2d':>13} "
              f"{'float ops':>9} {'MUL->sign':>9} {'agreement':>9} {'s':>6}")
    print(f"zoo export at {'x'.join(map(str, shape))}, {args.num_classes} classes")
    print(header)
    rows, failed = [], 0
    for name in names:
        for variant in models.get(name).variants:
            if wanted and variant not in wanted:
                continue
            row = export_row(name, variant, shape, args.num_classes, args.samples,
                             calibrate=args.calibrate, trace=args.trace)
            rows.append(row)
            ok = row_ok(row, args.min_agreement)
            failed += not ok
            lowered = f"{row['lce_bconv2d']}/{row['binary_convs']}"
            print(f"{name:<20} {variant:<7} {row['tflite_mb']:>9.2f} {lowered:>13} "
                  f"{row['float_ops']:>9} {row['mul_into_binarizer']:>9} "
                  f"{row['top1_agreement']:>9.0%} {row['seconds']:>6.0f}"
                  f"{'' if ok else '  FAIL'}", flush=True)
            for d in row["divergences"]:
                print(f"    input {d['sample']}: " + (
                    "every binarizer input agrees; differs after the last"
                    if d["layer"] is None else
                    f"diverges at {d['layer']}: {d['flips']} sign flip(s), "
                    f"|x| <= {d['flip_max_abs']:.2g}, |diff| <= {d['max_abs_diff']:.2g} "
                    f"(std {d['std']:.3g}); before it |diff| <= "
                    f"{d['before_max_abs_diff']:.2g} (std {d['before_std']:.3g})")
                    + (": rounding" if d["rounding"] else ": NOT rounding"), flush=True)
            if args.json:  # after every row: a crash on a large model keeps the others
                atomic_write_json(args.json, {"input_shape": shape,
                                              "num_classes": args.num_classes, "rows": rows})
    print(f"{len(rows) - failed}/{len(rows)} ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
