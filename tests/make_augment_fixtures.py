"""Make ``tests/data/randaugment.npz``: timm's RandAugment ops applied to fixed images.

The RandAugment that timm 0.6.11's ``create_transform`` builds with BNext's arguments
(``auto_augment="rand-m7-mstd0.5-inc1"``, ``interpolation="bicubic"``, the ImageNet mean;
BNext's ``src/train_assistant_group_amp.py`` and ``utils/utils.py``) gives the
configuration (op names, layers, magnitude and its std, probability, fill colour,
resampling, uniform choice). Then each of its ops is called directly, bypassing the
random choices: its ``level_fn`` at fixed levels with the random sign fixed (``random.random``
patched), its ``aug_fn`` on three seeded 24x32 uint8 images with the op's own keyword
arguments (and also bilinear resampling for the geometric ops, timm's other choice). The
file holds the images, each case (op, level, sign, resampling, the argument the level gave)
and the uint8 results. ``tests/test_augment.py`` reads it and needs neither torch nor timm.

Run it in an environment with timm 0.6.11 and torchvision (not the project's)::

    /work/venv-tv/bin/python tests/make_augment_fixtures.py

Pillow >= 11 refuses posterize to 0 bits (level 10 of ``PosterizeIncreasing``), so the
cases stop at level 9.9 there; the test checks level 10 against the lookup table that
Pillow 9.3 (BNext's pin) computes.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from make_transform_fixtures import import_timm_data  # noqa: E402

OUT = Path(__file__).parent / "data" / "randaugment.npz"
SHAPE = (24, 32, 3)
GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
#: op name -> levels; signed ops get both signs at 7 and one at the others
LEVELS = {"AutoContrast": (7.0,), "Equalize": (7.0,), "Invert": (7.0,),
          "PosterizeIncreasing": (1.0, 3.0, 6.0, 9.9), "SolarizeIncreasing": (1.0, 5.0, 9.9, 10.0),
          "SolarizeAdd": (2.0, 7.0, 10.0)}
SIGNED_LEVELS = ((3.0, False), (7.0, False), (7.0, True), (10.0, True))


def make_images() -> np.ndarray:
    """Noise; smooth gradients with noise in [40, 200]; blocks of few levels with saturated
    corners."""
    rng = np.random.default_rng(20240611)
    h, w, _ = SHAPE
    noise = rng.integers(0, 256, SHAPE)
    y, x = np.mgrid[0:h, 0:w]
    smooth = np.stack([40 + 160 * x / (w - 1), 40 + 160 * y / (h - 1),
                       120 + 80 * np.sin(x / 3.0) * np.cos(y / 4.0)], -1)
    smooth = np.clip(smooth + rng.normal(0, 6, SHAPE), 40, 200)
    blocks = np.kron(rng.integers(0, 8, (h // 4, w // 4, 3)) * 32, np.ones((4, 4, 1)))
    blocks[:3, :3] = 0
    blocks[-3:, -3:] = 255
    return np.stack([noise, np.round(smooth), blocks]).astype(np.uint8)


def bnext_rand_augment(timm_data):
    """The RandAugment inside the transform timm builds for BNext's training."""
    transform = timm_data.create_transform(
        224, is_training=True, auto_augment="rand-m7-mstd0.5-inc1", interpolation="bicubic",
        mean=timm_data.IMAGENET_DEFAULT_MEAN, std=timm_data.IMAGENET_DEFAULT_STD)
    ra = [t for t in transform.transforms if type(t).__name__ == "RandAugment"]
    assert len(ra) == 1, transform
    return ra[0]


def level_args(op, level: float, negate: bool):
    """``op.level_fn`` with its random sign fixed (timm negates when random() > 0.5)."""
    if op.level_fn is None:
        return ()
    with mock.patch.object(random, "random", lambda: 0.75 if negate else 0.25):
        return op.level_fn(level, op.hparams)


def main() -> None:
    from PIL import Image

    timm_data = import_timm_data()
    ra = bnext_rand_augment(timm_data)
    ops = {op.name: op for op in ra.ops}
    images = make_images()
    fill = ra.ops[0].kwargs["fillcolor"]
    resample = ra.ops[0].kwargs["resample"]
    assert all(op.kwargs["fillcolor"] == fill and op.kwargs["resample"] == resample
               for op in ra.ops)
    names, levels, negates, interps, args, outputs = [], [], [], [], [], []
    for name, op in ops.items():
        signed = name not in LEVELS
        cases = [(lvl, neg, "bicubic") for lvl, neg in SIGNED_LEVELS] if signed else \
            [(lvl, False, "bicubic") for lvl in LEVELS[name]]
        if name in GEOMETRIC:
            cases += [(7.0, False, "bilinear"), (7.0, True, "bilinear")]
        for level, negate, interp in cases:
            arg = level_args(op, level, negate)
            kwargs = dict(op.kwargs, resample={"bicubic": Image.BICUBIC,
                                               "bilinear": Image.BILINEAR}[interp])
            outputs.append([np.asarray(op.aug_fn(Image.fromarray(im), *arg, **kwargs))
                            for im in images])
            names.append(name)
            levels.append(level)
            negates.append(negate if signed else -1)
            interps.append(interp)
            args.append(float(arg[0]) if arg else np.nan)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT, images=images, outputs=np.asarray(outputs, np.uint8),
        case_name=np.array(names), case_level=np.array(levels), case_negate=np.array(negates),
        case_interpolation=np.array(interps), case_arg=np.array(args),
        config_ops=np.array([op.name for op in ra.ops]), config_layers=ra.num_layers,
        config_magnitude=[op.magnitude for op in ra.ops],
        config_magnitude_std=[op.magnitude_std for op in ra.ops],
        config_prob=[op.prob for op in ra.ops], config_fill=np.array(fill),
        config_interpolation="bicubic" if resample == Image.BICUBIC else str(resample),
        config_uniform_choice=ra.choice_weights is None)
    print(f"{OUT}: {len(names)} cases, {OUT.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
