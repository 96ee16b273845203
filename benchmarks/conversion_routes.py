"""Conversion time of the frozen-GraphDef route against the SavedModel route, in one run.

``bnn_keras.export.convert`` freezes models under ``FROZEN_GRAPH_MAX_BYTES`` of variables
into a GraphDef for LCE (a private LCE 0.16 entry point) and saves larger ones as a
SavedModel (the public route). This times both routes on the same model, alternating them
over ``--repeats`` rounds, and prints each time and the flatbuffer sizes.

    python benchmarks/conversion_routes.py --model reactnet_18 --variant bf --repeats 3
"""

from __future__ import annotations

import argparse
import time

import bnn_keras  # noqa: F401  (Keras 2 before TensorFlow)


def main() -> None:
    from bnn_keras import models
    from bnn_keras.export import convert as convert_module

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="reactnet_18")
    p.add_argument("--variant", default="bf")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    routes = {"frozen": 2**62, "saved": 0}  # the size threshold that forces each route
    default = convert_module.FROZEN_GRAPH_MAX_BYTES
    print("| input | route | seconds per conversion | flatbuffer bytes |")
    print("|---|---|---|---|")
    for classes, shape in [(10, (32, 32, 3)), (1000, (224, 224, 3))]:
        model = models.create(args.model, args.variant, classes, shape)
        times: dict[str, list[float]] = {route: [] for route in routes}
        sizes = {}
        for _ in range(args.repeats):
            for route, threshold in routes.items():
                convert_module.FROZEN_GRAPH_MAX_BYTES = threshold
                start = time.perf_counter()
                sizes[route] = len(convert_module.convert(model))
                times[route].append(time.perf_counter() - start)
        convert_module.FROZEN_GRAPH_MAX_BYTES = default
        for route, seconds in times.items():
            print(f"| {'x'.join(map(str, shape))}, {classes} classes | {route} | "
                  f"{', '.join(f'{s:.2f}' for s in seconds)} | {sizes[route]:,} |", flush=True)


if __name__ == "__main__":
    main()
