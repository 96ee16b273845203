"""The official networks' fixtures: the seeded weight rule and the fixture reader.

A fixture (``tests/data/official/<case>.npz`` of a source checkout, made by
``tests/make_official_fixtures.py`` running the official PyTorch code) holds a state
dict's key -> shape list, the BatchNorm running statistics the official network measured
on data, an input and the logits the official network gave for it. Every other tensor is
:func:`seeded_tensor` of its key, so a reader (``tests/test_official.py``,
``benchmarks/official_equality.py``) rebuilds the whole state dict without torch and
without storing the weights. NumPy only: the fixture makers import it beside torch.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: the fixtures' folders in a source checkout (not in an installed wheel)
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "official"
STEP_FIXTURES = FIXTURES.parent / "official_steps"
MEASURED = ("running_mean", "running_var", "num_batches_tracked")


def seeded_tensor(key: str, shape: tuple[int, ...]) -> np.ndarray:
    """The value of state-dict entry ``key``: a function of the key name only.

    Binary and real conv / linear weights ~ N(0, 0.05^2), never exactly 0; 1-D ``weight`` (BN scale,
    PReLU slope) ~ U(0.2, 1.2); biases (BN, learnable bias, linear) ~ N(0, 0.1^2); WS
    gains ~ U(0.5, 1.5); BNext's recoupling ``scale`` ~ U(0, 1); BNext temperatures 1e-8
    (a fully decayed, binary checkpoint).
    """
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    leaf = key.rsplit(".", 1)[-1]
    if leaf in MEASURED:
        raise ValueError(f"{key} is measured, not seeded")
    if leaf == "temperature":
        return np.full(shape, 1e-8, np.float32)
    if leaf == "gain":
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if leaf == "scale":
        return rng.uniform(0.0, 1.0, shape).astype(np.float32)
    if leaf == "bias":
        return (0.1 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    if leaf == "weight" and len(shape) == 1:
        return rng.uniform(0.2, 1.2, shape).astype(np.float32)
    weights = 0.05 * rng.standard_normal(shape, dtype=np.float32)
    # NumPy's float32 normals hit exactly 0 about once in 2**23 draws; PyTorch's sign
    # makes such a binary weight 0 where a 1-bit kernel has +1 (see ImportReport)
    weights[weights == 0] = 0.05
    return weights


def direction(key: str, shape: tuple[int, ...], index: int) -> np.ndarray:
    """The ``index``-th seeded N(0, 1) direction for state-dict entry ``key``: projections
    on 8 of them stand in for a tensor too large to store (the mean square of the
    projections of a difference is its squared norm)."""
    rng = np.random.default_rng([zlib.crc32(key.encode()), index])
    return rng.standard_normal(shape, dtype=np.float32)


@dataclass
class Fixture:
    """One official network's fixture."""

    name: str
    meta: dict  # repository, commit, file, constructor, model, variant, source, input_size
    shapes: dict[str, tuple[int, ...]]
    measured: dict[str, np.ndarray]  # BN running statistics (float16-exact)
    inputs: np.ndarray  # NHWC, float32
    logits: np.ndarray  # the official network's, float32

    def state_dict(self) -> dict[str, np.ndarray]:
        """The whole state dict the official network was run with."""
        state = {}
        for key, shape in self.shapes.items():
            if key in self.measured:
                state[key] = self.measured[key].astype(np.float32)
            elif key.endswith("num_batches_tracked"):
                state[key] = np.zeros(shape, np.int64)
            else:
                state[key] = seeded_tensor(key, shape)
        return state


def fixture_names(folder: Path = FIXTURES) -> list[str]:
    """The fixtures in ``folder``, by name (``<source>-<model>-<variant>``)."""
    return sorted(p.stem for p in folder.glob("*.npz"))


def load_fixture(name: str, folder: Path = FIXTURES) -> Fixture:
    """The fixture ``name`` of ``folder``."""
    with np.load(folder / f"{name}.npz", allow_pickle=False) as data:
        manifest = json.loads(str(data["manifest"]))
        measured = {key: data[f"measured/{key}"] for key in manifest["measured"]}
        return Fixture(name, manifest["meta"],
                       {k: tuple(s) for k, s in manifest["shapes"]}, measured,
                       data["inputs"], data["logits"])
