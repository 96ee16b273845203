"""LCE latency of zero against +1 padding of the binary convs, in one run.

The official networks pad the binarised input of every "same" binary conv with 0, which
LCE computes with a correction after each ``LceBconv2d``; +1 padding (``binary_pad=1``)
needs none. For each model: build it at 224x224 (``bn``, untrained, BN statistics
calibrated), convert it both ways, and time single-image inference with LCE's
interpreter, alternating the two flatbuffers over ``--repeats`` rounds so a noisy
neighbour slows both alike; prints the best round's median of each and their ratio.

    python benchmarks/padding_latency.py --models reactnet_18,reactnet_a,bnext_tiny \\
        --threads 1 --runs 20 --repeats 3

Off ARM the interpreter runs LCE's reference-quality x86 kernels: the ratio, not the
milliseconds, is the figure to compare (``bnn-keras bench --ssh`` measures a board).
"""

from __future__ import annotations

import argparse

import numpy as np

import bnn_keras  # noqa: F401  (Keras 2 before TensorFlow)


def flatbuffers(name: str, variant: str, size: int) -> dict[str, bytes]:
    from bnn_keras import export, models

    out = {}
    for pad in (0.0, 1.0):
        model = models.create(name, variant, 1000, (size, size, 3), binary_pad=pad)
        x = np.random.default_rng(0).standard_normal((2, size, size, 3)).astype(np.float32)
        export.calibrate_batchnorm(model, x)
        out[f"pad {pad:g}"] = export.convert(model)
    return out


def main() -> None:
    from bnn_keras.bench.local import best_median_ms

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="reactnet_18,reactnet_a,bnext_tiny")
    p.add_argument("--variant", default="bn")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print("| model | zero padding (ms) | +1 padding (ms) | zero / +1 |")
    print("|---|---|---|---|")
    for name in args.models.split(","):
        best = best_median_ms(flatbuffers(name, args.variant, args.input_size),
                              threads=args.threads, runs=args.runs, repeats=args.repeats)
        zero, one = best["pad 0"], best["pad 1"]
        print(f"| {name} {args.variant} | {zero:.1f} | {one:.1f} | {zero / one:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
