"""Where LCE's interpreter and Keras part ways in one zoo model: the input of each binarizer,
compared element by element (:func:`bnn_keras.export.trace_signs`).

The model is built untrained, its BatchNorm statistics calibrated on the inputs as in
``zoo_export.py`` (same seed, same inputs), converted once, and every ``--every``-th
binarizer input read out of the flatbuffer (an extra output) and out of Keras. One row
per binarizer: elements per sample, the tensor's std, sign flips per sample and the
largest ``|x|`` (Keras's value) at a flipped element. Then, per sample, the first
binarizer with a flip and whether the full model's top-1 agrees.

Usage::

    python benchmarks/sign_trace.py --model birealnet_18 --variant bn
    python benchmarks/sign_trace.py --model reactnet_a --variant bn --every 2 --json t.json
    python benchmarks/sign_trace.py --model bnext_small --input-shape 32,32,3 \
        --num-classes 10 --samples 4 --weight-seed 5
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

import numpy as np

import bnn_keras  # noqa: F401  (sets the Keras environment before TensorFlow loads)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from bnn_keras import export, models
    from bnn_keras.files import atomic_write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--variant", default="bn")
    parser.add_argument("--input-shape", default="224,224,3", help="H,W,C")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs")
    parser.add_argument("--weight-seed", type=int, default=None,
                        help="seed the initial weights (default: unseeded)")
    parser.add_argument("--every", type=int, default=1, help="trace every n-th binarizer")
    parser.add_argument("--no-calibrate-bn", dest="calibrate", action="store_false")
    parser.add_argument("--json", default="", help="also write the traces to this file")
    args = parser.parse_args(argv)

    shape = tuple(int(v) for v in args.input_shape.split(","))
    if args.weight_seed is not None:
        import tf_keras as keras

        keras.utils.set_random_seed(args.weight_seed)
    model = models.create(args.model, args.variant, num_classes=args.num_classes,
                          input_shape=shape)
    inputs = np.random.default_rng(args.seed).standard_normal(
        (args.samples, *shape)).astype(np.float32)
    if args.calibrate:
        export.calibrate_batchnorm(model, inputs)

    logits = model.predict(inputs, batch_size=8, verbose=0)
    flatbuffer = export.convert(model)
    lce_logits = export.predict_tflite(flatbuffer, inputs).reshape(logits.shape)
    agree = np.argmax(logits, -1) == np.argmax(lce_logits, -1)

    print(f"{args.model} {args.variant} at {'x'.join(map(str, shape))}, {args.samples} "
          f"inputs (seed {args.seed}), BN {'calibrated' if args.calibrate else 'initial'}")
    print(f"{'binarizer input of':<28} {'elements':>9} {'std':>8}  flips per sample"
          f"{'':<10} max |x| at a flip")
    traces = export.trace_signs(model, inputs, every=args.every, flatbuffer=flatbuffer)
    for t in traces:
        flips = " ".join(f"{n:d}" for n in t.flips)
        print(f"{t.layer:<28} {t.size:>9} {t.std:>8.3g}  {flips:<26} "
              f"{max(t.flip_max_abs):.3g}", flush=True)
    print("sample  first flip at                top-1 agrees  logits corr")
    for i in range(args.samples):
        first = next((t.layer for t in traces if t.flips[i]), "-")
        corr = float(np.corrcoef(logits[i], lce_logits[i])[0, 1])
        print(f"{i:>6}  {first:<28} {'yes' if agree[i] else 'NO':>12}  {corr:.10f}")
    if args.json:
        atomic_write_json(args.json, {
            "model": args.model, "variant": args.variant, "input_shape": shape,
            "samples": args.samples, "seed": args.seed, "calibrated": args.calibrate,
            "traces": [asdict(t) for t in traces], "top1_agrees": agree.tolist()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
