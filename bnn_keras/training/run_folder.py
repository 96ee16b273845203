"""The files of a run folder, ``runs/<name>/``, in one place.

::

    config.json         the resolved TrainConfig
    checkpoints/        tf.train checkpoints (net, optimizer, epoch): the last two epochs
                        (ckpt-N, rolling) for --resume, and checkpoints/first/ckpt-1, the
                        state after the first epoch, kept for good (sign-flip analysis
                        between the first and the last checkpoint); each is written in
                        checkpoints/.pending/ and moved into place after its epoch's
                        history row (bnn_keras.training.checkpoints)
    history.csv         per-epoch loss and accuracy (a resumed epoch replaces its row)
    curves.png          the training curves (loss, accuracy; train and validation)
    tensorboard/        TensorBoard logs (train/ and validation/, per epoch)
    init_report.json    what --init-from loaded (two-step stage 2)
    model.keras         the final trained network
    metrics.json        train and test accuracy, timing, export agreement
    model.tflite        the LCE export (not for stage 1, whose weights are real-valued)
    model.report.json   the export report (the format and name of bnn-keras export's)

Nothing here imports TensorFlow, so commands that only look at run folders stay fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bnn_keras.json_files import read_json_object

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
FIRST_CHECKPOINT = "first"  # checkpoints/first/ckpt-1: the state after epoch 1, kept forever
MODEL_FILE = "model.keras"


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder (see the module docstring for what each holds).

    Example:
        ```python
        folder = RunFolder("runs/reactnet_18-bf-digits")
        net = load_keras_model(folder.model)
        ```
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def first_checkpoint(self) -> Path:
        """The prefix of the permanent checkpoint written after the first epoch."""
        return self.checkpoints / FIRST_CHECKPOINT / "ckpt-1"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def curves(self) -> Path:
        return self.path / "curves.png"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def init_report(self) -> Path:
        return self.path / "init_report.json"

    @property
    def model(self) -> Path:
        """The trained network, ``model.keras``."""
        return self.path / MODEL_FILE

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def tflite(self) -> Path:
        return self.path / "model.tflite"

    @property
    def export_report(self) -> Path:
        return self.path / "model.report.json"


def read_run_config(path: str | os.PathLike) -> dict:
    """The JSON object in a run's ``config.json``; a file that cannot be read, is not
    JSON or holds something else than an object is a one-line :class:`BnnError` naming
    it."""
    return read_json_object(path, "run config")


def model_file(source: str | os.PathLike) -> Path:
    """The ``.keras`` file ``source`` names: a run folder's ``model.keras``, or ``source``
    itself when it is not a folder.

    Example:
        ```python
        model_file("runs/reactnet_18-bf-digits")  # runs/reactnet_18-bf-digits/model.keras
        ```
    """
    path = Path(source)
    return RunFolder(path).model if path.is_dir() else path


def next_run_dir(output: str | os.PathLike, name: str) -> Path:
    """``output/name``, or ``output/name-2``, ``-3``, ... if taken (never overwrite a run)."""
    base = Path(output) / name
    if not base.exists():
        return base
    i = 2
    while (base.parent / f"{name}-{i}").exists():
        i += 1
    return base.parent / f"{name}-{i}"


def claim_run_dir(output: str | os.PathLike, name: str) -> Path:
    """Create ``output/name`` or the first free ``name-N`` and return it.

    Each name is taken with an exclusive ``mkdir``: of two runs started at the same instant,
    which both saw the same name free, one gets it and the other the next name, never the
    same folder.
    """
    root = Path(output)
    root.mkdir(parents=True, exist_ok=True)
    candidate, i = root / name, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            i += 1
            candidate = root / f"{name}-{i}"
