"""Make ``tests/data/transforms.npz`` by running the official image transforms on a fixed image.

* Lighting: the official ``Lighting`` classes of ReActNet (``utils/utils.py``), BNN_NoBN
  (``dataset.py``) and Bi-Real Net (``pytorch_implementation/BiReal18_34/utils.py``), each
  called on the same uint8 PIL image with numpy's global generator seeded, so that the
  draws are known: the script records them (``np.random.randn(3) * alphastd`` as float32,
  drawn again after seeding again) with the images the classes return (the three must
  agree). Cases: the papers' ``alphastd`` 0.1, where the increment is about 0.01 of a
  level and only its sign survives the uint8 truncation, and 30 and 100, whose increments
  are whole levels (so the formula is checked, not just its sign).
* BNext's evaluation transform: the transform timm's ``create_loader`` sets on the
  validation set with the arguments of BNext's ``src/train_assistant_group_amp.py``
  (lines 560-573: ``input_size=[3, 224, 224]``, ``is_training=False``, the prefetcher on,
  ``interpolation=args.train_interpolation`` = ``bicubic`` by default at line 164,
  ``crop_pct=0.95``), applied to a PIL image: the uint8 array it returns (timm's
  ``ToNumpy``), and the first rows normalised as timm's ``PrefetchLoader`` does
  (``(x - 255 mean) / (255 std)``; it needs CUDA, so its two operations are repeated here
  with torch on the CPU). Also the same transform at 48 pixels on a part of the image,
  a 3x downscale (timm's transform takes any size).

The image is 300x257 RGB made with numpy (gradients, a sine and noise, with saturated
corners so the clipping shows); it is stored in the file with the results.
``tests/test_data_images.py`` reads the file and needs none of torch, torchvision or
timm. Those can be in a separate environment; timm 0.6.11 (BNext's requirements.txt)
does not import on Python 3.11 (a dataclass in ``timm.models``), but its ``timm.data``
does, so this script imports ``timm.data`` without running ``timm/__init__.py``::

    python3.11 -m venv /tmp/venv-tv
    /tmp/venv-tv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm==0.6.11 pillow numpy
    /tmp/venv-tv/bin/python tests/make_transform_fixtures.py --official ../official

(``--official`` holds the checkouts named as in ``tests/make_official_fixtures.py``.)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import types
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "data" / "transforms.npz"
#: repository folder -> the file that defines ``Lighting`` and ``imagenet_pca``
LIGHTING_FILES = {"ReActNet": "utils/utils.py", "BNN_NoBN": "dataset.py",
                  "Bi-Real-net": "pytorch_implementation/BiReal18_34/utils.py"}
#: (alphastd, seed): the papers' 0.1, and larger ones whose increments are whole levels
LIGHTING_CASES = [(0.1, 0), (0.1, 1), (0.1, 2), (30.0, 3), (100.0, 5), (100.0, 6)]
EVAL_CASES = [("full", 224, ((0, 300), (0, 257))),
              ("part", 48, ((0, 200), (0, 150)))]  # name, size, (rows, columns)


def fixed_image(height: int = 300, width: int = 257) -> np.ndarray:
    """A deterministic RGB uint8 image: ramps and a sine with noise, saturated corners."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    red = 300 * x / (width - 1) - 20
    green = 300 * y / (height - 1) - 20
    blue = 127.5 + 140 * np.sin(x / 9.0 + y / 13.0)
    noise = np.random.RandomState(18).normal(0, 6, (height, width, 3))
    image = np.stack([red, green, blue], axis=-1) + noise
    image[:12, :12] = 0
    image[-12:, -12:] = 255
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def load_file(path: Path, name: str):
    """Import ``path`` as module ``name`` with its folder on ``sys.path``."""
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        del sys.path[0]
    return module


def import_timm_data():
    """``timm.data`` without ``timm/__init__.py`` (which imports ``timm.models``)."""
    if "timm.data" in sys.modules:
        return sys.modules["timm.data"]
    spec = importlib.util.find_spec("timm")
    package = types.ModuleType("timm")
    package.__path__ = [str(Path(spec.origin).parent)]
    sys.modules["timm"] = package
    import timm.data

    return timm.data


def lighting_fixtures(official: Path, image: np.ndarray) -> dict:
    from PIL import Image

    modules = {repo: load_file(official / repo / file, f"official_{repo.replace('-', '_')}")
               for repo, file in LIGHTING_FILES.items()}
    alphas, outputs, incs = [], [], []
    for alphastd, seed in LIGHTING_CASES:
        np.random.seed(seed)
        alpha = (np.random.randn(3) * alphastd).astype("float32")
        results = []
        for module in modules.values():
            np.random.seed(seed)
            results.append(np.asarray(module.Lighting(alphastd)(Image.fromarray(image))))
        assert all(np.array_equal(results[0], r) for r in results[1:]), "repositories differ"
        pca = modules["ReActNet"].imagenet_pca
        alphas.append(alpha)
        outputs.append(results[0])
        incs.append(np.dot(pca["eigvec"], alpha * pca["eigval"]))  # the class's arithmetic
    return {"lighting_input": image, "lighting_alphastd": np.array([c[0] for c in
                                                                    LIGHTING_CASES]),
            "lighting_alpha": np.stack(alphas), "lighting_output": np.stack(outputs),
            "lighting_inc": np.stack(incs)}


class _Images:
    """The least a dataset needs for ``create_loader``: a length and a ``transform``."""

    transform = None

    def __len__(self) -> int:
        return 1


def bnext_eval_transform(size: int):
    """The validation transform ``create_loader`` sets with BNext's arguments."""
    data = import_timm_data()
    dataset = _Images()
    try:  # the same keywords as train_assistant_group_amp.py:560-573
        data.create_loader(dataset, input_size=[3, size, size], batch_size=2,
                           is_training=False, use_prefetcher=True, interpolation="bicubic",
                           mean=data.IMAGENET_DEFAULT_MEAN, std=data.IMAGENET_DEFAULT_STD,
                           num_workers=1, distributed=False, crop_pct=0.95, pin_memory=False)
    except (AssertionError, RuntimeError):  # the PrefetchLoader wants CUDA; the transform
        pass  # is set on the dataset before that
    assert dataset.transform is not None
    return dataset.transform


def eval_fixtures(image: np.ndarray) -> dict:
    import torch
    from PIL import Image

    data = import_timm_data()
    out = {"eval_image": image}
    for name, size, ((top, bottom), (left, right)) in EVAL_CASES:
        transform = bnext_eval_transform(size)
        chw = transform(Image.fromarray(image[top:bottom, left:right]))  # ToNumpy: uint8, CHW
        out[f"eval_{name}_size"] = np.array(size)
        out[f"eval_{name}_region"] = np.array([[top, bottom], [left, right]])
        out[f"eval_{name}_output"] = np.ascontiguousarray(chw.transpose(1, 2, 0))
        out[f"eval_{name}_transform"] = np.array(re.sub(r" at 0x[0-9a-f]+", "", repr(transform)))
    # timm loader.py PrefetchLoader: mean/std times 255, then x.float().sub_(mean).div_(std)
    mean = torch.tensor([x * 255 for x in data.IMAGENET_DEFAULT_MEAN]).view(1, 3, 1, 1)
    std = torch.tensor([x * 255 for x in data.IMAGENET_DEFAULT_STD]).view(1, 3, 1, 1)
    rows = torch.from_numpy(out["eval_full_output"][:4].transpose(2, 0, 1).copy())[None]
    normed = rows.float().sub_(mean).div_(std)
    out["eval_full_normalized_rows"] = normed[0].permute(1, 2, 0).numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True,
                        help="folder holding ReActNet/, BNN_NoBN/, Bi-Real-net/")
    args = parser.parse_args()
    import PIL
    import torch
    import torchvision

    import_timm_data()
    import timm.version

    image = fixed_image()
    arrays = {**lighting_fixtures(args.official, image[::5, ::4]), **eval_fixtures(image)}
    meta = {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "timm": timm.version.__version__, "pillow": PIL.__version__,
            "numpy": np.__version__, "lighting_cases": LIGHTING_CASES}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, meta=np.array(json.dumps(meta)), **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB): {meta}")


if __name__ == "__main__":
    main()
