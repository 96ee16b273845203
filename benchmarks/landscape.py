"""Wall time of a loss-landscape grid (default: 21 x 21, reactnet_18 bf, 512 digits images;
``bnn-keras landscape``'s default is 9 x 9 on 128 images, ``--full`` this one).

    python benchmarks/landscape.py [--run runs/reactnet_18-bf-digits] [--points 21]

Without --run the grid is taken around a freshly initialised reactnet_18 (the time does
not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import os
import time

import bnn_keras  # noqa: F401  (before TensorFlow)
from bnn_keras import models
from bnn_keras.insight.landscape import loss_landscape
from bnn_keras.insight.sources import load_split, resolve
from bnn_keras.keras_files import load_keras_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None)
    parser.add_argument("--points", type=int, default=21)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    if args.run:
        model = load_keras_model(resolve(args.run).path)
    else:
        model = models.create("reactnet_18", "bf", 10, (32, 32, 3))
    x, y, _, _ = load_split("digits", "train", args.samples)
    start = time.time()

    def progress(done: int, total: int) -> None:
        if done % args.points == 0:
            print(f"row {done // args.points}/{total // args.points} "
                  f"({time.time() - start:.0f} s)", flush=True)

    grid = loss_landscape(model, x, y, points=args.points, batch_size=args.batch_size,
                          progress=progress)
    evals = grid.loss.size
    print(f"model {model.name}, {evals} grid points x {len(y)} images, "
          f"{os.cpu_count()} CPU cores")
    print(f"wall time {grid.seconds:.1f} s ({grid.seconds / evals:.2f} s per grid point, "
          f"{evals * len(y) / grid.seconds:.0f} images/s)")


if __name__ == "__main__":
    main()
