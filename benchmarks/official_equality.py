"""How close our networks come to the official PyTorch code's: one row per fixture.

For each fixture of ``tests/data/official`` (made by ``tests/make_official_fixtures.py``
running the official code on seeded weights), import its state dict with
``bnn_keras.models.import_torch`` and print the relative L2 error of the logits against
the official ones, from Keras and from the LCE flatbuffer (``--no-lce`` skips the
conversion), and whether the top-1 agrees. ``tests/test_official.py`` asserts the same
figures under 1e-3.

    python benchmarks/official_equality.py                 # every fixture
    python benchmarks/official_equality.py --cases bnext-bnext_tiny-bn --no-lce
"""

from __future__ import annotations

import argparse

import numpy as np

import bnn_keras  # noqa: F401  (Keras 2 before TensorFlow)
from bnn_keras.official_fixtures import fixture_names, load_fixture


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def row(name: str, lce: bool) -> str:
    from bnn_keras import export
    from bnn_keras.models import import_torch

    fixture = load_fixture(name)
    meta = fixture.meta
    net, report = import_torch(fixture.state_dict(), meta["model"], meta["variant"],
                               input_size=meta["input_size"], source=meta["source"])
    keras_logits = net.predict(fixture.inputs, verbose=0)
    same = (keras_logits.argmax(-1) == fixture.logits.argmax(-1)).all()
    cells = [name, f"{meta['repository']} `{meta['file']}`", str(meta["input_size"]),
             str(meta["num_classes"]), f"{_rel(keras_logits, fixture.logits):.1e}"]
    if lce:
        deployed = export.predict_tflite(export.convert(net), fixture.inputs)
        deployed = deployed.reshape(keras_logits.shape)
        same = same and (deployed.argmax(-1) == fixture.logits.argmax(-1)).all()
        cells.append(f"{_rel(deployed, fixture.logits):.1e}")
    else:
        cells.append("-")
    cells.append("yes" if same else "NO")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=None, help="comma-separated fixture names")
    p.add_argument("--no-lce", action="store_true", help="Keras only, no conversion")
    args = p.parse_args()
    print("| fixture | official code | input | classes | rel. error Keras | rel. error LCE "
          "| same top-1 |")
    print("|---|---|---|---|---|---|---|")
    for name in (args.cases.split(",") if args.cases else fixture_names()):
        print(row(name, lce=not args.no_lce), flush=True)


if __name__ == "__main__":
    main()
