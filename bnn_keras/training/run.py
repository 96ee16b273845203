"""A training run: folder layout, resumable checkpoints, metrics and export.

``runs/<name>/`` holds::

    config.json         the resolved TrainConfig
    checkpoints/        tf.train checkpoints (net, optimizer, epoch): the last two epochs
                        (ckpt-N, rolling) for --resume, and checkpoints/first/ckpt-1, the
                        state after the first epoch, kept for good (sign-flip analysis
                        between first and last; see first_checkpoint_prefix and
                        last_checkpoint_prefix)
    history.csv         per-epoch loss and accuracy (a resumed epoch replaces its row)
    curves.png          the training curves (loss, accuracy; train and validation)
    tensorboard/        TensorBoard logs (train/ and validation/, per epoch)
    init_report.json    what --init-from loaded (two-step stage 2)
    model.keras         the final trained network
    metrics.json        train and test accuracy, timing, export agreement
    model.tflite        the LCE export (not for stage 1, whose weights are real-valued)
    export.json         the export report

A run whose loss becomes NaN stops with a :class:`BnnError` naming the epoch and step;
the rolling checkpoints then still hold the last good epoch. A resumed run starts from the
newest checkpoint that loads (see :mod:`bnn_keras.training.resume`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from bnn_keras import data as data_lib
from bnn_keras import models
from bnn_keras.errors import BnnError
from bnn_keras.io import atomic_write_json, save_keras_atomic
from bnn_keras.training.callbacks import (
    CurvesPlot,
    EpochCheckpoint,
    HistoryLog,
    StopOnNaN,
    TemperatureSchedule,
    first_checkpoint_prefix,
)
from bnn_keras.training.config import TrainConfig
from bnn_keras.training.resume import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    check_run_folder,
    newest_run_with_checkpoint,
    restore_newest,
    run_label,
)
from bnn_keras.training.train_model import TrainingModel, build_trainer


@dataclass
class RunResult:
    """Where a finished run lives and what it measured."""

    run_dir: Path
    metrics: dict


def next_run_dir(output: str | Path, name: str) -> Path:
    """``output/name``, or ``output/name-2``, ``-3``, ... if taken (never overwrite a run)."""
    base = Path(output) / name
    if not base.exists():
        return base
    i = 2
    while (base.parent / f"{name}-{i}").exists():
        i += 1
    return base.parent / f"{name}-{i}"


def latest_run_dir(output: str | Path, name: str) -> Path:
    """The most recently active run folder ``name`` or ``name-N`` that has a checkpoint."""
    return newest_run_with_checkpoint(output, name)


def last_checkpoint_prefix(run_dir: str | Path) -> Path | None:
    """The newest rolling checkpoint of a run (``checkpoints/ckpt-N``), or ``None``."""
    latest = tf.train.latest_checkpoint(str(Path(run_dir) / CHECKPOINT_DIR))
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


def _load_data(config: TrainConfig):
    return data_lib.load(
        config.dataset, batch_size=config.batch_size, seed=config.seed,
        data_dir=config.data_dir or None, manual_dir=config.manual_dir or None,
        image_size=config.image_size or None,
        augment=None if config.augment == "default" else config.augment,
        randaugment=(config.randaugment_layers, config.randaugment_magnitude,
                     config.randaugment_magnitude_std) if config.augment == "randaugment"
        else None,
        lighting=config.lighting, eval_crop_pct=config.eval_crop_pct,
        eval_interpolation=config.eval_interpolation)


def _teachers(config: TrainConfig, dataset) -> tuple:
    if not config.teacher:
        return None, []
    from bnn_keras.training.distill import load_teacher

    kwargs = dict(num_classes=dataset.num_classes, input_shape=dataset.input_shape,
                  mean=dataset.mean, std=dataset.std)
    return (load_teacher(config.teacher, **kwargs),
            [load_teacher(a, **kwargs) for a in config.assistants])


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
    writes the run folder. A fresh run that fails before training starts (data, network,
    teacher) leaves no folder behind.
    """
    from bnn_keras.training.distribute import is_chief, make_strategy

    # the strategy first: multi-worker collectives must be configured before TF starts
    strategy = make_strategy(config.strategy)
    chief, multiworker = is_chief(), config.strategy == "multiworker"
    run_dir, resume, why = _choose_run_dir(config, resume, resume_from, multiworker)
    if resume:
        stored = TrainConfig.load(run_dir / CONFIG_FILE)
        stored.epochs = max(stored.epochs, config.epochs) if config.epochs else stored.epochs
        stored.strategy = config.strategy  # a run may resume on another cluster shape
        config = stored
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise BnnError(f"the global batch {config.batch_size} does not split evenly over "
                       f"{replicas} replicas; pick a multiple of {replicas}")
    fresh = chief and not resume and not multiworker
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / CONFIG_FILE, config.to_dict())
    with seeded(config):
        try:
            setup = _setup(config, strategy, run_dir, resume, chief, why)
        except BaseException:
            if fresh:
                shutil.rmtree(run_dir, ignore_errors=True)  # nothing trained: leave no run
            raise
        return _fit_and_save(config, setup, run_dir, chief, verbose, export)


def _choose_run_dir(config: TrainConfig, resume: bool, resume_from, multiworker: bool,
                    ) -> tuple[Path, bool, str]:
    """The run folder, whether it is resumed, and why that folder (for the message)."""
    if resume_from:
        return check_run_folder(resume_from), True, ""
    if multiworker:
        run_dir = Path(config.output) / config.name
        return run_dir, resume or (run_dir / CHECKPOINT_DIR / "checkpoint").exists(), ""
    if resume:
        return (latest_run_dir(config.output, config.name), True,
                f"the newest run named {config.name} with a checkpoint")
    return next_run_dir(config.output, config.name), False, ""


@dataclass
class _Setup:
    """What a run trains with: the data, the step count, the network and its trainer."""

    dataset: object
    train_data: tf.data.Dataset
    steps_per_epoch: int
    net: keras.Model
    trainer: TrainingModel
    epoch: tf.Variable
    checkpoint: tf.train.Checkpoint
    replicas: int


def _setup(config: TrainConfig, strategy, run_dir: Path, resume: bool, chief: bool,
           why: str) -> _Setup:
    """Data, network, trainer and checkpoint, restored when resuming."""
    from bnn_keras.training.distribute import with_sync_batch_norm

    dataset = _load_data(config)
    steps_per_epoch = int(tf.data.experimental.cardinality(dataset.train).numpy())
    if steps_per_epoch < 0:  # unknown cardinality (e.g. filtered tfds data)
        steps_per_epoch = max(1, -(-dataset.train_size // config.batch_size))
    train_data = dataset.train
    if config.steps_per_epoch:
        steps_per_epoch = config.steps_per_epoch
        train_data = train_data.repeat()
    if config.strategy == "multiworker":  # every worker reads the same (seeded) stream
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.DATA
        train_data = train_data.with_options(options)

    with strategy.scope():
        net = _network(config, dataset, resume, run_dir, chief)
        if config.sync_bn:
            net = with_sync_batch_norm(net)
        trainer = _trainer(config, dataset, net, steps_per_epoch)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = tf.train.Checkpoint(net=net, optimizer=trainer.optimizer, epoch=epoch)
    if resume:
        _restore(config, checkpoint, net, epoch, run_dir, why)
    return _Setup(dataset, train_data, steps_per_epoch, net, trainer, epoch, checkpoint,
                  strategy.num_replicas_in_sync)


def _restore(config: TrainConfig, checkpoint: tf.train.Checkpoint, net: keras.Model,
             epoch: tf.Variable, run_dir: Path, why: str) -> None:
    """Restore the newest checkpoint that loads, and say which (and why this folder)."""
    used = restore_newest(checkpoint, run_dir)
    because = f" ({why})" if why else ""
    if used is not None:
        print(f"resuming {run_dir} after epoch {int(epoch.numpy())} from "
              f"{run_label(run_dir, used)}{because}", flush=True)
        return
    print(f"resuming {run_dir}{because}: it has no checkpoint, so it starts again from "
          "epoch 1", flush=True)
    if config.init_from:
        from bnn_keras.training.two_step import init_from

        init_from(net, config.init_from, config.init_skip)  # killed before epoch 1 ended


def _fit_and_save(config: TrainConfig, setup: _Setup, run_dir: Path, chief: bool,
                  verbose: int, export: bool) -> RunResult:
    """Train from the restored epoch on, evaluate, save the model and export it."""
    trainer, dataset, net = setup.trainer, setup.dataset, setup.net
    # workers other than the chief save to a scratch folder (saving may need every worker)
    scratch = None if chief else Path(tempfile.mkdtemp(prefix="bnn-keras-worker-"))
    manager = tf.train.CheckpointManager(setup.checkpoint, scratch or run_dir / CHECKPOINT_DIR,
                                         max_to_keep=2)
    initial_epoch = int(setup.epoch.numpy())
    checkpoint_cb = EpochCheckpoint(manager, setup.epoch, setup.checkpoint,
                                    first_checkpoint_prefix(run_dir) if chief else None)
    callbacks = [StopOnNaN(run_dir / CHECKPOINT_DIR, checkpoint_cb)]
    if chief:
        # an epoch's history row is written before its checkpoint: a run killed in between
        # repeats that epoch on resume, and its new row replaces the stale one
        callbacks += [HistoryLog(run_dir / "history.csv"), checkpoint_cb,
                      CurvesPlot(run_dir / "history.csv", run_dir / "curves.png"),
                      keras.callbacks.TensorBoard(str(run_dir / "tensorboard"),
                                                  write_graph=False, profile_batch=0)]
    else:
        callbacks.append(checkpoint_cb)
    if config.weight_temperature > 0:
        callbacks.append(TemperatureSchedule(net, config.weight_temperature,
                                             config.temperature_decay))
    if trainer.assistants:
        from bnn_keras.training.distill import TeacherSwitch

        callbacks.append(TeacherSwitch(trainer.assistant_index, len(trainer.assistants),
                                       config.epochs, config.assistant_epochs))
    start = time.time()
    try:
        history = trainer.fit(
            setup.train_data, epochs=config.epochs, initial_epoch=initial_epoch,
            steps_per_epoch=config.steps_per_epoch or None,
            validation_data=dataset.test, verbose=verbose if chief else 0, callbacks=callbacks,
        )
        train_seconds = time.time() - start
        train_acc = trainer.evaluate(dataset.train, verbose=0, return_dict=True)["accuracy"]
        test_eval = trainer.evaluate(dataset.test, verbose=0, return_dict=True)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    metrics = {
        "model": config.model, "variant": config.variant, "dataset": config.dataset,
        "stage": config.stage, "steps_per_epoch": setup.steps_per_epoch,
        "epochs": config.epochs, "train_accuracy": float(train_acc),
        "test_accuracy": float(test_eval["accuracy"]), "test_loss": float(test_eval["loss"]),
        "train_seconds_this_session": round(train_seconds, 1),
        "epochs_this_session": len(history.history.get("loss", [])),
        "strategy": config.strategy, "replicas": setup.replicas,
        "deterministic": config.deterministic,
        "stats": models.model_stats(net).as_dict(),
    }
    if not chief:
        return RunResult(run_dir, metrics)
    save_keras_atomic(net, run_dir / "model.keras")
    if export and config.stage != 1:  # stage 1 has real-valued weights: nothing to deploy
        if setup.replicas > 1 or config.strategy != "default":
            from bnn_keras.io import load_keras_model

            net = load_keras_model(run_dir / "model.keras")  # a plain copy, outside the scope
        metrics["export"] = _export_run(net, dataset, run_dir)
    atomic_write_json(run_dir / "metrics.json", metrics)
    return RunResult(run_dir, metrics)


def _network(config: TrainConfig, dataset, resume: bool, run_dir: Path,
             chief: bool) -> keras.Model:
    """The network, with the changes its stage and STE clip ask for."""
    net = models.create(config.model, config.variant, num_classes=dataset.num_classes,
                        input_shape=dataset.input_shape, **config.model_options)
    if config.ste_clip:
        from bnn_keras.training.two_step import set_ste_clip

        set_ste_clip(net, config.ste_clip)
    if config.stage == 1:
        from bnn_keras.training.two_step import set_real_weights

        set_real_weights(net)
    if config.init_from and not resume:
        from bnn_keras.training.two_step import init_from

        report = init_from(net, config.init_from, config.init_skip)  # a failure: no run left
        if chief:
            atomic_write_json(run_dir / "init_report.json", report.as_dict())
            print(report.summary(), flush=True)
    return net


def _trainer(config: TrainConfig, dataset, net: keras.Model,
             steps_per_epoch: int) -> TrainingModel:
    teacher, assistants = _teachers(config, dataset)
    return build_trainer(config, net, dataset.num_classes, steps_per_epoch, teacher,
                         assistants)


def _export_run(net: keras.Model, dataset, run_dir: Path) -> dict:
    """Export to ``model.tflite`` and measure it on the whole test split."""
    from bnn_keras.export import export_model

    x_test, y_test = data_lib.to_arrays(dataset.test)
    report = export_model(net, run_dir / "model.tflite", x_test)
    atomic_write_json(run_dir / "export.json", report.as_dict())
    return {
        "tflite_bytes": report.size_bytes,
        "all_binary_convs_lowered": report.all_lowered,
        "top1_agreement_test_split": report.agreement.top1_agreement,
        "max_abs_diff": report.agreement.max_abs_diff,
        "tflite_test_accuracy": _tflite_accuracy(run_dir / "model.tflite", x_test, y_test),
    }


def _tflite_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    interpreter = Interpreter(path.read_bytes(), num_threads=2)
    preds = [int(np.argmax(interpreter.predict(x[i:i + 1]))) for i in range(len(x))]
    return float(np.mean(np.asarray(preds) == y))
