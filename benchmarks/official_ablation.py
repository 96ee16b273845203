"""The official networks against our named departures from them, on digits.

Trains the default run (``bnn-keras train``: reactnet_18 ``bf`` on digits, 6 epochs) with
the official architecture and with each departure, for several seeds, and prints the test
top-1 of each as mean and min-max:

- ``official``       the defaults (BNN_NoBN's Qaw_reactnet_18_bf: RPReLU on the stream,
                     transition shortcut gain beta, zero padding of the binary convs);
- ``rprelu=branch``  RPReLU inside the residual branch;
- ``pool_gain``      transition shortcut gain 2 * beta;
- ``binary_pad=1``   +1 padding of the binary convs;
- ``ours-before``    all three together (what bnn-keras built before it followed the
                     official code).

    python benchmarks/official_ablation.py --seeds 0,1,2 --output runs/ablation

Runs already in ``--output`` (``metrics.json`` present) are read, not trained again, so an
interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import bnn_keras  # noqa: F401  (Keras 2 before TensorFlow)

SETTINGS = {
    "official": {},
    "rprelu=branch": {"rprelu": "branch"},
    "pool_gain": {"pool_gain": True},
    "binary_pad=1": {"binary_pad": 1.0},
    "ours-before": {"rprelu": "branch", "pool_gain": True, "binary_pad": 1.0},
}


def run(setting: str, seed: int, output: Path, args) -> float:
    """Test top-1 of one run (trained unless its metrics exist)."""
    from bnn_keras.training import TrainConfig
    from bnn_keras.training.run import train

    name = f"{setting.replace('=', '-')}-s{seed}"
    metrics = output / name / "metrics.json"
    if metrics.exists():
        return json.loads(metrics.read_text())["test_accuracy"]
    config = TrainConfig(model=args.model, variant="bf", seed=seed, epochs=args.epochs,
                         model_options=SETTINGS[setting], output=str(output), name=name)
    return train(config, verbose=0, export=False).metrics["test_accuracy"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--model", default="reactnet_18")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--output", type=Path, default=Path("runs/ablation"))
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for setting in args.settings.split(","):
        accuracies = [run(setting, seed, args.output, args) for seed in seeds]
        rows.append((setting, accuracies))
        print(f"{setting}: {', '.join(f'{a:.2%}' for a in accuracies)}", flush=True)
    print(f"\n{args.model} bf, digits, {args.epochs} epochs, seeds {args.seeds}: test top-1")
    print("| setting | mean | min | max | per seed |")
    print("|---|---|---|---|---|")
    for setting, acc in rows:
        a = np.asarray(acc)
        print(f"| {setting} | {a.mean():.2%} | {a.min():.2%} | {a.max():.2%} | "
              f"{' / '.join(f'{x:.2%}' for x in acc)} |")


if __name__ == "__main__":
    main()
