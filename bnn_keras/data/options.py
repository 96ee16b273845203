"""The data pipelines' options, one frozen object from the command line to ``tf.data``.

:class:`DataOptions` is what every loader of :func:`bnn_keras.data.load` takes; a run's
:class:`~bnn_keras.training.config.TrainConfig` holds the same fields (its ``config.json``
keeps them flat) and makes one with ``data_options``; ``bnn-keras train`` draws the
flags' help and defaults from its fields. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from bnn_keras.data.base import AUGMENTS, INTERPOLATIONS
from bnn_keras.errors import BnnError
from bnn_keras.option_checks import check_field_types, check_names, check_range

MAX_BATCH = 65536  # 16x the largest global batch of the reproduced papers (4096)
#: the official ReActNet / BNN_NoBN / Bi-Real evaluation: the shorter side resized to
#: 256 for a 224 crop
DEFAULT_CROP_PCT = 0.875
#: the range of each integer option: a value outside is a one-line error, not an
#: overflow deep in TensorFlow (a 10**23 batch) or NumPy (a negative seed)
DATA_INT_LIMITS = {"batch_size": (1, MAX_BATCH), "seed": (0, 2**32 - 1),
                   "image_size": (0, 4096), "randaugment_layers": (0, 32)}


def _option(default, help_text: str = ""):
    """A field with its command-line help (``bnn-keras train --help``)."""
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class DataOptions:
    """How a dataset is read, augmented, batched and shuffled (see
    :mod:`bnn_keras.data.images` for what each augmentation does). Options that do not
    apply to a dataset are left unused (``digits`` takes the batch, seed and size).
    Checked when made: a bad value is a one-line :class:`BnnError`.
    """

    batch_size: int = _option(64, "Global batch size.")
    seed: int = _option(0, "Seeds the data order and augmentation (and the run's weights).")
    data_dir: str = _option("", "tensorflow-datasets data folder, prepared beforehand (`tfds "
                                "build NAME --data_dir DIR`; nothing is downloaded) [default: "
                                "~/tensorflow_datasets].")
    manual_dir: str = _option("", "Folder holding the ImageNet archives (tfds manual "
                                  "download).")
    image_size: int = _option(0, "Input size; 0 is the dataset's own (32 for CIFAR, 224 for "
                                 "ImageNet and folders).")
    augment: str = _option("default", "Training augmentation: the papers' own, that plus "
                                      "RandAugment, or none.")
    randaugment_layers: int = _option(2, "RandAugment: operations per image.")
    randaugment_magnitude: float = _option(7.0, "RandAugment: magnitude (0-10).")
    randaugment_magnitude_std: float = _option(0.5, "RandAugment: std of the magnitude's "
                                                    "noise.")
    lighting: float = _option(0.0, "PCA colour noise std on the training crops (0.1 in "
                                   "ReActNet, BNN_NoBN, Bi-Real Net).")
    eval_crop_pct: float = _option(DEFAULT_CROP_PCT, "Evaluation: resize the shorter side to "
                                                     "int(size / crop_pct), then centre-crop.")
    eval_interpolation: str = _option("bilinear", "Evaluation resize; bicubic is PIL's, as "
                                                  "timm (BNext).")

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.batch_size < 1:
            raise BnnError(f"batch size must be >= 1, got {self.batch_size}")
        for name, (low, high) in DATA_INT_LIMITS.items():
            check_range(name, getattr(self, name), low, high)
        for name, choices in (("augment", AUGMENTS), ("eval_interpolation", INTERPOLATIONS)):
            if getattr(self, name) not in choices:
                raise BnnError(f"{name} must be one of {', '.join(choices)}, "
                               f"got {getattr(self, name)!r}")
        if not (self.lighting >= 0 and math.isfinite(self.lighting)):
            raise BnnError(f"lighting must be >= 0 and finite, got {self.lighting}")
        if not 0 < self.eval_crop_pct <= 1:
            raise BnnError(f"eval_crop_pct must be in (0, 1], got {self.eval_crop_pct}")

    @property
    def randaugment(self) -> tuple[int, float, float]:
        """RandAugment's ``(layers, magnitude, magnitude std)``."""
        return (self.randaugment_layers, self.randaugment_magnitude,
                self.randaugment_magnitude_std)

    @classmethod
    def names(cls) -> list[str]:
        """The options' names, in order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def help(cls, name: str) -> str:
        """The command-line help of option ``name``."""
        return cls.__dataclass_fields__[name].metadata["help"]

    def updated(self, **values) -> DataOptions:
        """These options with ``values`` set (``None`` keeps an option as it is); an
        unknown name is a one-line :class:`BnnError` naming it and the known ones."""
        values = {k: v for k, v in values.items() if v is not None}
        check_names(values, self.names(), "data option")
        return replace(self, **values)
