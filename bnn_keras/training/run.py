"""A training run: choose its folder, then build, fit and finish it.

:func:`train` is the whole run; its three steps are :func:`~bnn_keras.training.run_steps.build`
(data, network, trainer, restored checkpoint), :func:`~bnn_keras.training.run_steps.fit`
(the epochs, then evaluation) and :func:`~bnn_keras.training.run_steps.finish` (the model,
export and metrics files). The folder's files are listed in
:mod:`bnn_keras.training.run_folder`.

A run whose loss becomes NaN stops with a :class:`BnnError` naming the epoch and step;
the rolling checkpoints then still hold the last good epoch. A resumed run starts from the
newest checkpoint that loads (see :mod:`bnn_keras.training.resume`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import tensorflow as tf
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.files import atomic_write_json
from bnn_keras.training.callbacks import read_history
from bnn_keras.training.config import TrainConfig
from bnn_keras.training.precision import resolve_precision
from bnn_keras.training.resume import (
    check_run_folder,
    has_checkpoint,
    newest_run_with_checkpoint,
)
from bnn_keras.training.run_folder import RunFolder, claim_run_dir, model_file, next_run_dir

__all__ = ["RunResult", "last_checkpoint_prefix", "latest_run_dir", "next_run_dir", "seeded",
           "train"]


@dataclass
class RunResult:
    """Where a finished run lives and what it measured."""

    run_dir: Path
    metrics: dict


def latest_run_dir(output: str | Path, name: str) -> Path:
    """The most recently active run folder ``name`` or ``name-N`` that has a checkpoint."""
    return newest_run_with_checkpoint(output, name)


def last_checkpoint_prefix(run_dir: str | Path) -> Path | None:
    """The newest rolling checkpoint of a run (``checkpoints/ckpt-N``), or ``None``."""
    latest = tf.train.latest_checkpoint(str(RunFolder(run_dir).checkpoints))
    return Path(latest) if latest else None


@contextmanager
def seeded(config: TrainConfig) -> Iterator[None]:
    """Seed Python, NumPy and TensorFlow with ``config.seed`` (weight init, data order,
    augmentation: the pipelines' shuffles and random ops take their seeds from it) and,
    with ``config.deterministic``, turn on TensorFlow's op determinism for the block.

    Op determinism also makes ``tf.data`` deterministic (maps with random ops run
    serially). It is switched off again afterwards when it was off before, so a
    deterministic run leaves the process as it found it.
    """
    from tensorflow.python.framework import config as tf_config

    keras.utils.set_random_seed(config.seed)
    switch = config.deterministic and not tf_config.is_op_determinism_enabled()
    if switch:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if switch:
            tf_config.disable_op_determinism()


def train(config: TrainConfig, *, resume: bool = False, resume_from: str | Path | None = None,
          verbose: int = 1, export: bool = True) -> RunResult:
    """Train ``config`` (or resume a run of it), save, evaluate and export.

    ``resume`` continues the newest run folder named ``config.name`` (or ``name-N``) that
    has a checkpoint; ``resume_from`` continues that exact run folder. A resumed run
    restores the network, the optimizer (and so the schedule) and the epoch counter from
    its newest checkpoint that loads and continues with the next epoch; a folder without
    any checkpoint starts again from epoch 1 in place. The stored config wins, except a
    larger ``config.epochs``.

    Under ``config.strategy`` (see :mod:`bnn_keras.training.distribute`) the network,
    optimizer and metrics are built in the strategy's scope and ``batch_size`` is the
    global batch. A multi-worker run lives in ``output/name`` (a folder every worker can
    read) and, like Keras's ``BackupAndRestore``, continues from its checkpoints when they
    exist: restart every worker with the same command after a crash. Only the chief
    writes the run folder. A fresh run that fails or is stopped (Ctrl-C, SIGTERM) before
    its first epoch ends leaves no folder behind (see :func:`_after_stop`).
    """
    from bnn_keras.training import run_steps
    from bnn_keras.training.distribute import is_chief, make_strategy

    # the strategy first: multi-worker collectives must be configured before TF starts
    strategy = make_strategy(config.strategy)
    chief, multiworker = is_chief(), config.strategy == "multiworker"
    _check_model_files(config, resume=bool(resume or resume_from))
    folder, resume, why = _choose_folder(config, resume, resume_from, multiworker)
    if resume:  # what the resumed run reads, checked before it trains
        config = _stored_config(folder, config)
        read_history(folder.history)
    else:  # resolved once, into this run's own config (the caller's is left as it was)
        config = replace(config, precision=resolve_precision(config.precision))
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise BnnError(f"the global batch {config.batch_size} does not split evenly over "
                       f"{replicas} replicas; pick a multiple of {replicas}")
    fresh = chief and not resume and not multiworker
    if fresh:  # taken exclusively: a run started at the same instant gets another name
        folder = RunFolder(claim_run_dir(config.output, config.name))
    elif chief:
        folder.path.mkdir(parents=True, exist_ok=True)
    if chief:
        atomic_write_json(folder.config, config.to_dict())
    building = True
    try:
        with seeded(config):
            setup = run_steps.build(config, strategy, folder, resume=resume, chief=chief,
                                    why=why)
            building = False
            fitted = run_steps.fit(config, setup, folder, chief=chief, verbose=verbose)
            metrics = run_steps.finish(config, setup, fitted, folder, chief=chief,
                                       export=export)
    except BaseException as err:
        replacement = _after_stop(err, config, folder, fresh=fresh, building=building)
        if replacement is None:
            raise
        raise replacement from None
    return RunResult(folder.path, metrics)


def _after_stop(err: BaseException, config: TrainConfig, folder: RunFolder, *, fresh: bool,
                building: bool) -> BaseException | None:
    """Clean up after a run stopped by ``err`` and say what it left; returns the error to
    raise instead of ``err``, if any.

    A fresh run that stopped before any epoch finished leaves no folder (a config alone
    is no run to resume), except after a :class:`BnnError` raised while training, whose
    message describes the folder (a first epoch that diverged). An interrupt gets a hint
    (``err.hint``): the folder removed, or how to continue the run. TensorFlow running
    out of memory becomes a one-line error naming the batch size.
    """
    removed = (fresh and (building or not isinstance(err, BnnError))
               and not folder.history.exists() and not has_checkpoint(folder.path))
    if removed:
        shutil.rmtree(folder.path, ignore_errors=True)
    if isinstance(err, KeyboardInterrupt):
        if removed:
            err.hint = f"no epoch had finished, so the run folder {folder.path} was removed"
        elif config.strategy == "multiworker":
            err.hint = "start every worker again with the same command to continue the run"
        else:
            err.hint = f"continue the run with `bnn-keras train --resume-from {folder.path}`"
    elif isinstance(err, tf.errors.ResourceExhaustedError):
        gone = "; no epoch had finished, so the run folder was removed" if removed else ""
        return BnnError(f"TensorFlow ran out of memory training at batch size "
                        f"{config.batch_size} (try a smaller --batch-size){gone}")
    return None


def _check_model_files(config: TrainConfig, *, resume: bool) -> None:
    """The model files the run loads (``init_from``, unless resuming, and the teachers),
    checked before any folder is made (:func:`bnn_keras.keras_files.check_keras_file`)."""
    from bnn_keras.keras_files import check_keras_file
    from bnn_keras.training.distill import is_model_file_spec, pretrained_builder
    from bnn_keras.training.two_step import resolve_source

    if config.init_from and not resume:
        check_keras_file(resolve_source(config.init_from))
    for spec in (config.teacher, *config.assistants):
        if spec and is_model_file_spec(spec):
            check_keras_file(model_file(spec))
        elif spec:
            pretrained_builder(spec)  # the name only: the weights load with the run


def _choose_folder(config: TrainConfig, resume: bool, resume_from, multiworker: bool,
                   ) -> tuple[RunFolder, bool, str]:
    """The run folder, whether it is resumed, and why that folder (for the message)."""
    if resume_from:
        return RunFolder(check_run_folder(resume_from)), True, ""
    if multiworker:
        folder = RunFolder(Path(config.output) / config.name)
        return folder, resume or (folder.checkpoints / "checkpoint").exists(), ""
    if resume:
        return (RunFolder(latest_run_dir(config.output, config.name)), True,
                f"the newest run named {config.name} with a checkpoint")
    return RunFolder(next_run_dir(config.output, config.name)), False, ""


def _stored_config(folder: RunFolder, config: TrainConfig) -> TrainConfig:
    """The resumed run's own config, with a larger ``epochs`` and this ``strategy``."""
    stored = TrainConfig.load(folder.config)
    if stored.precision == "auto":  # stored before runs had a precision: they were float32
        stored.precision = "float32"
    stored.epochs = max(stored.epochs, config.epochs) if config.epochs else stored.epochs
    stored.strategy = config.strategy  # a run may resume on another cluster shape
    return stored
