"""A training run: folder layout, resumable checkpoints, metrics and export.

``runs/<name>/`` holds::

    config.json         the resolved TrainConfig
    checkpoints/        tf.train checkpoints (net, optimizer, epoch): the last two epochs
                        (ckpt-N, rolling) for --resume, and checkpoints/first/ckpt-1, the
                        state after the first epoch, kept for good (sign-flip analysis
                        between first and last; see first_checkpoint_prefix and
                        last_checkpoint_prefix)
    history.csv         per-epoch loss and accuracy
    curves.png          the training curves (loss, accuracy; train and validation)
    tensorboard/        TensorBoard logs (train/ and validation/, per epoch)
    init_report.json    what --init-from loaded (two-step stage 2)
    model.keras         the final trained network
    metrics.json        train and test accuracy, timing, export agreement
    model.tflite        the LCE export (not for stage 1, whose weights are real-valued)
    export.json         the export report

A run whose loss becomes NaN stops with a :class:`BnnError` naming the epoch and step;
the rolling checkpoints then still hold the last good epoch.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from bnn_keras import data as data_lib
from bnn_keras import models
from bnn_keras.errors import BnnError
from bnn_keras.io import atomic_write_json, atomic_write_text, save_keras_atomic
from bnn_keras.training.callbacks import (
    CurvesPlot,
    EpochCheckpoint,
    StopOnNaN,
    TemperatureSchedule,
    first_checkpoint_prefix,
)
from bnn_keras.training.config import TrainConfig
from bnn_keras.training.train_model import TrainingModel, build_trainer

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


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
    """The most recently modified run folder ``name`` or ``name-N`` that has a config."""
    root = Path(output)
    candidates = [p for p in root.glob(f"{name}*")
                  if p.is_dir() and (p / CONFIG_FILE).exists()
                  and (p.name == name or p.name[len(name):].lstrip("-").isdigit())]
    if not candidates:
        raise BnnError(f"nothing to resume: no run folder {root / name} with a {CONFIG_FILE}")
    return max(candidates, key=lambda p: (p / CONFIG_FILE).stat().st_mtime)


def last_checkpoint_prefix(run_dir: str | Path) -> Path | None:
    """The newest rolling checkpoint of a run (``checkpoints/ckpt-N``), or ``None``."""
    latest = tf.train.latest_checkpoint(str(Path(run_dir) / CHECKPOINT_DIR))
    return Path(latest) if latest else None


def trim_history(history_csv: Path, epochs_done: int) -> None:
    """Keep the header and the rows of the first ``epochs_done`` epochs of ``history.csv``
    (rows of an epoch that a killed run did not checkpoint are repeated on resume)."""
    if not history_csv.exists():
        return
    lines = history_csv.read_text().splitlines(keepends=True)
    kept = [line for line in lines[1:]
            if line.split(",", 1)[0].isdigit() and int(line.split(",", 1)[0]) < epochs_done]
    if len(kept) != len(lines) - 1:
        atomic_write_text(history_csv, "".join(lines[:1] + kept))


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


def train(config: TrainConfig, *, resume: bool = False, verbose: int = 1,
          export: bool = True) -> RunResult:
    """Train ``config`` (or resume its latest run), save, evaluate and export.

    A resumed run restores the network, the optimizer (and so the schedule) and the epoch
    counter from the newest checkpoint and continues with the next epoch.

    Under ``config.strategy`` (see :mod:`bnn_keras.training.distribute`) the network,
    optimizer and metrics are built in the strategy's scope and ``batch_size`` is the
    global batch. A multi-worker run lives in ``output/name`` (a folder every worker can
    read) and, like Keras's ``BackupAndRestore``, continues from its checkpoints when they
    exist: restart every worker with the same command after a crash. Only the chief
    writes the run folder.
    """
    from bnn_keras.training.distribute import is_chief, make_strategy, with_sync_batch_norm

    # the strategy first: multi-worker collectives must be configured before TF starts
    strategy = make_strategy(config.strategy)
    chief, multiworker = is_chief(), config.strategy == "multiworker"
    if multiworker:
        run_dir = Path(config.output) / config.name
        resume = resume or (run_dir / CHECKPOINT_DIR / "checkpoint").exists()
    if resume:
        run_dir = run_dir if multiworker else latest_run_dir(config.output, config.name)
        stored = TrainConfig.load(run_dir / CONFIG_FILE)
        stored.epochs = max(stored.epochs, config.epochs) if config.epochs else stored.epochs
        stored.strategy = config.strategy  # a run may resume on another cluster shape
        config = stored
    elif not multiworker:
        run_dir = next_run_dir(config.output, config.name)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise BnnError(f"the global batch {config.batch_size} does not split evenly over "
                       f"{replicas} replicas; pick a multiple of {replicas}")
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / CONFIG_FILE, config.to_dict())

    keras.utils.set_random_seed(config.seed)
    dataset = _load_data(config)
    steps_per_epoch = int(tf.data.experimental.cardinality(dataset.train).numpy())
    if steps_per_epoch < 0:  # unknown cardinality (e.g. filtered tfds data)
        steps_per_epoch = max(1, -(-dataset.train_size // config.batch_size))
    train_data = dataset.train
    if config.steps_per_epoch:
        steps_per_epoch = config.steps_per_epoch
        train_data = train_data.repeat()
    if multiworker:  # every worker reads the same (seeded) stream and keeps its share
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
    # workers other than the chief save to a scratch folder (saving may need every worker)
    scratch = None if chief else Path(tempfile.mkdtemp(prefix="bnn-keras-worker-"))
    manager = tf.train.CheckpointManager(checkpoint, scratch or run_dir / CHECKPOINT_DIR,
                                         max_to_keep=2)
    latest = last_checkpoint_prefix(run_dir) if resume else None
    if latest:
        try:
            checkpoint.restore(str(latest)).expect_partial()
        except Exception as err:  # noqa: BLE001
            raise BnnError(f"cannot restore checkpoint {latest}: "
                           f"{str(err).splitlines()[0][:200]}") from None
        print(f"resuming {run_dir} after epoch {int(epoch.numpy())}", flush=True)
    elif resume and config.init_from:
        from bnn_keras.training.two_step import init_from

        init_from(net, config.init_from, config.init_skip)  # killed before epoch 1 ended
    initial_epoch = int(epoch.numpy())

    checkpoint_cb = EpochCheckpoint(manager, epoch, checkpoint,
                                    first_checkpoint_prefix(run_dir) if chief else None)
    callbacks = [StopOnNaN(run_dir / CHECKPOINT_DIR, checkpoint_cb)]
    if chief:
        trim_history(run_dir / "history.csv", initial_epoch)
        # an epoch's history row is written before its checkpoint: a run killed in between
        # repeats that epoch on resume, and trim_history drops the stale row
        callbacks += [keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
                      checkpoint_cb, CurvesPlot(run_dir / "history.csv", run_dir / "curves.png"),
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
            train_data, epochs=config.epochs, initial_epoch=initial_epoch,
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
        "stage": config.stage, "steps_per_epoch": steps_per_epoch,
        "epochs": config.epochs, "train_accuracy": float(train_acc),
        "test_accuracy": float(test_eval["accuracy"]), "test_loss": float(test_eval["loss"]),
        "train_seconds_this_session": round(train_seconds, 1),
        "epochs_this_session": len(history.history.get("loss", [])),
        "strategy": config.strategy, "replicas": replicas,
        "stats": models.model_stats(net).as_dict(),
    }
    if not chief:
        return RunResult(run_dir, metrics)
    save_keras_atomic(net, run_dir / "model.keras")
    if export and config.stage != 1:  # stage 1 has real-valued weights: nothing to deploy
        if replicas > 1 or config.strategy != "default":
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

        try:
            report = init_from(net, config.init_from, config.init_skip)
        except BnnError:
            if chief:
                shutil.rmtree(run_dir, ignore_errors=True)  # nothing trained: leave no run
            raise
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
