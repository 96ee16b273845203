"""Image files for the data tests: a small image folder of JPEGs and PNGs, and a file
TensorFlow cannot decode."""

from pathlib import Path

import numpy as np
from PIL import Image


def write_folder(root: Path, classes=("cat", "dog", "eel"), per_class: int = 3,
                 rng: np.random.Generator | None = None) -> Path:
    """``root/{train,val}/<class>/<i>.{jpg,png}``: images of random sizes whose pixel
    level tells their class apart, one greyscale file per class when ``per_class`` > 2."""
    rng = rng or np.random.default_rng(0)
    for split in ("train", "val"):
        for c, cls in enumerate(classes):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                h, w = int(rng.integers(20, 48)), int(rng.integers(20, 48))
                pixels = np.full((h, w, 3), 40 * c, np.uint8) + rng.integers(0, 30, (h, w, 3),
                                                                            dtype=np.uint8)
                suffix = ".png" if i % 2 else ".jpg"
                mode = "L" if i == 2 else "RGB"  # a greyscale file too
                Image.fromarray(pixels).convert(mode).save(folder / f"{i}{suffix}")
    return root


def corrupt_middle(path: Path) -> None:
    """``path`` becomes a JPEG or PNG (by its suffix) of random pixels whose middle third
    is scrambled: its first and last bytes stay valid, and TensorFlow cannot decode it."""
    pixels = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, "PNG" if path.suffix == ".png" else "JPEG")
    data = bytearray(path.read_bytes())
    for k in range(len(data) // 3, 2 * len(data) // 3):
        data[k] = (data[k] * 7 + 13) % 256
    path.write_bytes(bytes(data))
