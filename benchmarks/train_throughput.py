"""Training-step throughput (images/s) of models and variants, side by side in one process.

Each (model, variant, precision) gets the step ``bnn-keras train`` runs (its trainer from
``build_trainer``: forward, loss, backward, AGC for ``bf``, the run's Adam update, the
accuracy metric) on random data, compiled with ``tf.function``;
after ``--warmup`` steps, ``--steps`` timed steps are repeated ``--repeats`` times and the
best repeat is reported (the least disturbed by other processes). Variants alternate per
repeat so a noisy neighbour hits all of them alike.

    python benchmarks/train_throughput.py --models reactnet_18 --variants bn,bf \\
        --input-size 32 --batch-size 64 --precision float32,mixed_bfloat16

A precision other than float32 builds the network under that Keras policy, with loss
scaling for ``mixed_float16``, as ``bnn-keras train --precision`` does. ``--jit-compile``
compiles the step with XLA instead of running TensorFlow's (oneDNN) kernels.

``--profile N`` then runs N more steps of each under TensorFlow's profiler and prints
where a step's time goes, per op type (kernel time summed over TensorFlow's inter-op
threads, so a column can exceed the step's wall time):

    python benchmarks/train_throughput.py --variants bf \
        --precision float32,mixed_bfloat16 --profile 3
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import bnn_keras  # noqa: F401  (Keras 2 before TensorFlow)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="reactnet_18", help="comma-separated model names")
    p.add_argument("--variants", default="bn,bf", help="comma-separated variants")
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--agc", type=float, default=None,
                   help="AGC clip factor for every variant [default: 0.02 for BN-free and "
                        "none, off for bn, as in the recipes]")
    p.add_argument("--threads", type=int, default=0, help="TF intra-op threads (0: TF default)")
    p.add_argument("--precision", default="float32",
                   help="comma-separated: float32, mixed_bfloat16, mixed_float16, auto")
    p.add_argument("--jit-compile", action="store_true", help="compile each step with XLA")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="profile N more steps of each and print time per op type")
    p.add_argument("--profile-rows", type=int, default=25)
    return p.parse_args()


def op_times(step, batch, steps: int) -> Counter:
    """Milliseconds per step spent in each op type while ``step(batch)`` runs ``steps``
    times under TensorFlow's profiler (kernel time on TensorFlow's executor threads)."""
    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            out = step(batch)
        float(out["loss"])
        tf.profiler.experimental.stop()
        xplane = next(Path(logdir).rglob("*.xplane.pb"))
        trace, ok = plugin.xspace_to_tools_data([str(xplane)], "trace_viewer@", {})
    if not ok:
        raise SystemExit("the profiler wrote no trace")
    events = json.loads(trace)["traceEvents"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    times = Counter()
    for e in events:
        if (e.get("ph") == "X" and e["name"] not in ("ExecutorState::Process",
                                                    "ThreadpoolListener::Region")
                and threads.get((e["pid"], e["tid"]), "").startswith("tf_Compute")):
            times[e["name"].removeprefix("_MklNative").removeprefix("_Mkl")] += e["dur"]
    return Counter({op: us / 1000 / steps for op, us in times.items()})


def print_op_times(profiles: dict, rows: int) -> None:
    """One column per profiled step, ops sorted by the last column; convolutions summed."""
    keys = list(profiles)
    print("\ntime per op type, ms per step (kernel time summed over executor threads)")
    print(f"{'op':<28}" + "".join(f"{'/'.join(k[1:]):>24}" for k in keys))
    ops = sorted(set().union(*profiles.values()), key=lambda op: -profiles[keys[-1]][op])
    conv = {k: sum(t for op, t in p.items() if op.startswith("Conv")) for k, p in profiles.items()}
    for op in ops[:rows]:
        print(f"{op:<28}" + "".join(f"{profiles[k][op]:>24.1f}" for k in keys))
    print(f"{'all Conv2D*':<28}" + "".join(f"{conv[k]:>24.1f}" for k in keys))
    print(f"{'all other ops':<28}"
          + "".join(f"{sum(profiles[k].values()) - conv[k]:>24.1f}" for k in keys))


def main() -> None:
    args = _parse()
    import numpy as np
    import tensorflow as tf

    from bnn_keras import models
    from bnn_keras.training import TrainConfig
    from bnn_keras.training.precision import precision_policy, resolve_precision
    from bnn_keras.training.train_model import build_trainer

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    rng = np.random.default_rng(0)
    shape = (args.input_size, args.input_size, 3)
    x = tf.constant(rng.normal(size=(args.batch_size, *shape)).astype(np.float32))
    y = tf.constant(rng.integers(0, args.num_classes, args.batch_size).astype(np.int32))

    steps = {}
    precisions = [resolve_precision(p) for p in args.precision.split(",")]
    for name in args.models.split(","):
        for variant in args.variants.split(","):
            for precision in precisions:
                with precision_policy(precision):
                    net = models.create(name, variant, args.num_classes, shape)
                agc = args.agc if args.agc is not None else (0.0 if variant == "bn" else 0.02)
                config = TrainConfig(model=name, variant=variant, agc_clip=agc,
                                     batch_size=args.batch_size, precision=precision)
                trainer = build_trainer(config, net, args.num_classes, steps_per_epoch=100)
                step = tf.function(trainer.train_step, reduce_retracing=True,
                                   jit_compile=args.jit_compile)
                for _ in range(args.warmup):
                    step((x, y))
                steps[(name, variant, precision)] = step
    best = {key: float("inf") for key in steps}
    for _ in range(args.repeats):
        for key, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                out = step((x, y))
            float(out["loss"])  # wait for the last step
            best[key] = min(best[key], time.perf_counter() - start)

    print(f"training-step throughput: input {args.input_size}x{args.input_size}, batch "
          f"{args.batch_size}, {args.steps} steps x best of {args.repeats}, "
          f"{os.cpu_count()} CPUs, TF {tf.__version__}")
    agc = "recipe (bn off, others 0.02)" if args.agc is None else args.agc
    print(f"AGC: {agc}" + ("; steps compiled with XLA" if args.jit_compile else ""))
    print(f"{'model':<16}{'variant':<9}{'precision':<16}{'images/s':>10}{'ms/step':>10}"
          f"{'vs bn':>8}{'vs fp32':>9}")
    for (name, variant, precision), seconds in best.items():
        ips = args.steps * args.batch_size / seconds
        bn = best.get((name, "bn", precision))
        fp32 = best.get((name, variant, "float32"))
        ratio = f"{bn / seconds:.2f}x" if bn else "-"
        vs32 = f"{fp32 / seconds:.2f}x" if fp32 else "-"
        print(f"{name:<16}{variant:<9}{precision:<16}{ips:>10.1f}"
              f"{1000 * seconds / args.steps:>10.1f}{ratio:>8}{vs32:>9}")
    if args.profile:
        print_op_times({key: op_times(step, (x, y), args.profile)
                        for key, step in steps.items()}, args.profile_rows)


if __name__ == "__main__":
    main()
