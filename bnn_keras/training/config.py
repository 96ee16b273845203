"""The resolved configuration of a training run (written to the run folder)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from bnn_keras.errors import BnnError


@dataclass
class TrainConfig:
    """Everything that defines a run. Defaults train the BN-free ReActNet-18 on digits."""

    model: str = "reactnet_18"
    variant: str = "bf"
    dataset: str = "digits"
    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 2e-3
    agc_clip: float = 0.02
    seed: int = 0
    steps_per_epoch: int = 0  # 0: one full pass over the training split
    output: str = "runs"
    name: str = ""

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise BnnError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise BnnError(f"batch size must be >= 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise BnnError(f"learning rate must be > 0, got {self.learning_rate}")
        if self.agc_clip < 0:
            raise BnnError(f"AGC clip factor must be >= 0 (0 turns AGC off), got {self.agc_clip}")
        if self.steps_per_epoch < 0:
            raise BnnError(f"steps per epoch must be >= 0, got {self.steps_per_epoch}")
        if not self.name:
            self.name = f"{self.model}-{self.variant}-{self.dataset}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as err:
            raise BnnError(f"cannot read run config {path}: {err}") from None
