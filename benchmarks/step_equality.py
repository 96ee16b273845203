"""How close our training step comes to the official scripts': one row per step fixture.

For each fixture of ``tests/data/official_steps`` (made by ``tests/make_step_fixtures.py``
running the official training code for three optimizer steps, in float64), train the same
three steps with our trainer from the recipe and print the largest relative error over all
weights, the largest relative error of the three losses, and the learning rates' largest
relative error. ``tests/test_official_steps.py`` asserts these under 1e-5 / 1e-6 / 1e-6.

    python benchmarks/step_equality.py
    python benchmarks/step_equality.py --cases bnext-bnext_tiny
"""

from __future__ import annotations

import argparse

import numpy as np

import bnn_keras  # noqa: F401  (Keras 2 before TensorFlow)
from bnn_keras.training.official_steps import CASES, our_steps, weight_errors


def row(name: str) -> str:
    import tf_keras as keras

    from bnn_keras.training.optim import build_schedule

    keras.backend.set_floatx("float64")
    try:
        manifest, arrays, config, net, losses = our_steps(name)
        meta = manifest["meta"]
        errors = weight_errors(manifest, arrays, net, meta["source"], meta["model"])
        schedule = build_schedule(config, 100)
        lrs = np.array([float(schedule.at_epoch(e)) for e in meta["epochs_checked"]])
    finally:
        keras.backend.set_floatx("float32")
    worst = max(errors, key=errors.get)
    loss_err = np.max(np.abs(np.array(losses) - arrays["losses"]) / np.abs(arrays["losses"]))
    # relative, except at a rate of 0 (the linear schedules' last epoch): absolute there
    lr_err = np.max(np.abs(lrs - arrays["lrs"]) / np.maximum(np.abs(arrays["lrs"]), 1e-12))
    stage = f" stage {meta['stage']}" if meta["stage"] else ""
    return (f"| {name} | `{meta['recipe']}`{stage} | {len(errors)} | {errors[worst]:.1e} "
            f"(`{worst}`) | {loss_err:.1e} | {lr_err:.1e} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=None, help="comma-separated fixture names")
    args = p.parse_args()
    print("| fixture | recipe | weights | worst weight rel. error | loss rel. error "
          "| lr rel. error |")
    print("|---|---|---|---|---|---|")
    for name in (args.cases.split(",") if args.cases else CASES):
        print(row(name), flush=True)


if __name__ == "__main__":
    main()
