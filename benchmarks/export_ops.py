"""Element-wise float ops per ``LceBconv2d`` and LCE latency, without and with the shift
folding (``fold_scales(model, fold_biases=...)``), in one run.

Every model has its shifts moved off zero first (:func:`bnn_keras.export.perturb_shifts`:
the converter drops an add of zeros, so an untrained net would export leaner than a
trained one) and its BN statistics calibrated. Op counts: every ``--models`` entry at
32x32, 10 classes. Latency: each ``--latency-models`` entry (its default variant) at
``--input-size``, both flatbuffers timed with LCE's interpreter, alternating over
``--repeats`` rounds so a noisy neighbour slows both alike; the best round's median of
each and their ratio.

    python benchmarks/export_ops.py --threads 1 --runs 20 --repeats 3

Off ARM the interpreter runs LCE's reference-quality x86 kernels: the ratio, not the
milliseconds, is the figure to compare.
"""

from __future__ import annotations

import argparse

import numpy as np

import bnn_keras  # noqa: F401  (Keras 2 before TensorFlow)

FAMILIES = ("reactnet_18:bf,reactnet_18:bn,reactnet_18:none,reactnet_a:bf,reactnet_a:bn,"
            "reactnet_a:none,birealnet_18:bn,birealnet_18:bf,bnext_tiny:bn,bnext_tiny:bf")
WAYS = {"before": False, "after": True}


def flatbuffers(name: str, variant: str, size: int, num_classes: int) -> dict[str, bytes]:
    """The trained-like model converted without and with the shift folding."""
    from bnn_keras import export, models

    rng = np.random.default_rng(0)
    model = models.create(name, variant, num_classes, (size, size, 3))
    export.perturb_shifts(model, rng)
    export.calibrate_batchnorm(model, rng.standard_normal((2, size, size, 3)).astype(np.float32))
    return {way: export.convert(model, fold_biases=fold) for way, fold in WAYS.items()}


def per_bconv(flatbuffer: bytes) -> tuple[float, str]:
    """Element-wise float ops per ``LceBconv2d``, and the count of each."""
    from bnn_keras import export

    counts = export.elementwise_counts(flatbuffer)
    bconvs = export.op_counts(flatbuffer)["LceBconv2d"]
    detail = " ".join(f"{op} {n}" for op, n in sorted(counts.items()))
    return sum(counts.values()) / bconvs, f"{bconvs} LceBconv2d: {detail}"


def op_table(cases: list[str]) -> None:
    print("| model | before: per bconv | after: per bconv | after: ops |")
    print("|---|---|---|---|")
    for case in cases:
        name, variant = case.split(":")
        buffers = flatbuffers(name, variant, 32, 10)
        (old, _), (new, detail) = (per_bconv(buffers[way]) for way in WAYS)
        print(f"| {name} {variant} | {old:.2f} | {new:.2f} | {detail} |", flush=True)


def latency_table(names: list[str], size: int, threads: int, runs: int, repeats: int) -> None:
    from bnn_keras import models
    from bnn_keras.bench.local import best_median_ms

    print("| model | before (ms) | after (ms) | after / before |")
    print("|---|---|---|---|")
    for name in names:
        variant = models.get(name).default_variant
        best = best_median_ms(flatbuffers(name, variant, size, 1000), threads=threads,
                              runs=runs, repeats=repeats)
        print(f"| {name} {variant} | {best['before']:.1f} | {best['after']:.1f} | "
              f"{best['after'] / best['before']:.3f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=FAMILIES, help="name:variant,... for the op counts")
    p.add_argument("--latency-models", default="reactnet_18,reactnet_a,bnext_tiny")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.models:
        op_table(args.models.split(","))
    if args.latency_models:
        latency_table(args.latency_models.split(","), args.input_size, args.threads,
                      args.runs, args.repeats)


if __name__ == "__main__":
    main()
