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
import time
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
    StopOnNaN,
    first_checkpoint_prefix,
)
from bnn_keras.training.config import TrainConfig
from bnn_keras.training.optim import build_optimizer, weight_decay_from_config
from bnn_keras.training.train_model import TrainingModel

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


class _SmoothedSparseCE(keras.losses.Loss):
    """Cross-entropy on integer labels with label smoothing (``eps`` spread uniformly)."""

    def __init__(self, num_classes: int, smoothing: float, name: str = "smoothed_ce"):
        super().__init__(name=name)
        self.num_classes = num_classes
        self.smoothing = smoothing

    def call(self, y_true, y_pred):
        onehot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), self.num_classes)
        return keras.losses.categorical_crossentropy(
            onehot, y_pred, from_logits=True, label_smoothing=self.smoothing)


def _load_data(config: TrainConfig):
    return data_lib.load(
        config.dataset, batch_size=config.batch_size, seed=config.seed,
        data_dir=config.data_dir or None, manual_dir=config.manual_dir or None,
        image_size=config.image_size or None,
        augment=None if config.augment == "default" else config.augment,
        randaugment=(config.randaugment_layers, config.randaugment_magnitude,
                     config.randaugment_magnitude_std) if config.augment == "randaugment"
        else None)


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
    """
    if resume:
        run_dir = latest_run_dir(config.output, config.name)
        stored = TrainConfig.load(run_dir / CONFIG_FILE)
        stored.epochs = max(stored.epochs, config.epochs) if config.epochs else stored.epochs
        config = stored
    else:
        run_dir = next_run_dir(config.output, config.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / CONFIG_FILE, config.to_dict())

    keras.utils.set_random_seed(config.seed)
    dataset = _load_data(config)
    net = models.create(config.model, config.variant, num_classes=dataset.num_classes,
                        input_shape=dataset.input_shape)
    if config.ste_clip:
        from bnn_keras.training.two_step import set_ste_clip

        set_ste_clip(net, config.ste_clip)
    if config.stage == 1:
        from bnn_keras.training.two_step import set_real_weights

        set_real_weights(net)
        export = False  # real-valued weights: nothing to deploy
    if config.stage == 2 and not resume:
        from bnn_keras.training.two_step import init_from

        try:
            report = init_from(net, config.init_from, config.init_skip)
        except BnnError:
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing trained: leave no run behind
            raise
        atomic_write_json(run_dir / "init_report.json", report.as_dict())
        print(report.summary(), flush=True)
    steps_per_epoch = int(tf.data.experimental.cardinality(dataset.train).numpy())
    if steps_per_epoch < 0:  # unknown cardinality (e.g. filtered tfds data)
        steps_per_epoch = max(1, -(-dataset.train_size // config.batch_size))
    train_data = dataset.train
    if config.steps_per_epoch:
        steps_per_epoch = config.steps_per_epoch
        train_data = train_data.repeat()
    teacher, assistants = _teachers(config, dataset)
    trainer = TrainingModel(net, agc_clip=config.agc_clip, grad_clip_norm=config.grad_clip_norm,
                            weight_decay=weight_decay_from_config(config), teacher=teacher,
                            assistants=assistants, kd_weighting=config.kd_weighting)
    loss = (_SmoothedSparseCE(dataset.num_classes, config.label_smoothing)
            if config.label_smoothing else
            keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    trainer.compile(
        optimizer=build_optimizer(config, steps_per_epoch), loss=loss,
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )

    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(net=net, optimizer=trainer.optimizer, epoch=epoch)
    manager = tf.train.CheckpointManager(checkpoint, run_dir / CHECKPOINT_DIR, max_to_keep=2)
    if resume and manager.latest_checkpoint:
        try:
            checkpoint.restore(manager.latest_checkpoint).expect_partial()
        except Exception as err:  # noqa: BLE001
            raise BnnError(f"cannot restore checkpoint {manager.latest_checkpoint}: "
                           f"{str(err).splitlines()[0][:200]}") from None
        print(f"resuming {run_dir} after epoch {int(epoch.numpy())}", flush=True)
    elif resume and config.stage == 2:
        from bnn_keras.training.two_step import init_from

        init_from(net, config.init_from, config.init_skip)  # killed before epoch 1 ended
    initial_epoch = int(epoch.numpy())

    checkpoint_cb = EpochCheckpoint(manager, epoch, checkpoint, first_checkpoint_prefix(run_dir))
    callbacks = [StopOnNaN(run_dir / CHECKPOINT_DIR, checkpoint_cb), checkpoint_cb,
                 keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
                 CurvesPlot(run_dir / "history.csv", run_dir / "curves.png"),
                 keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False,
                                             profile_batch=0)]
    if assistants:
        from bnn_keras.training.distill import TeacherSwitch

        callbacks.append(TeacherSwitch(trainer.assistant_index, len(assistants),
                                       config.epochs, config.assistant_epochs))
    start = time.time()
    history = trainer.fit(
        train_data, epochs=config.epochs, initial_epoch=initial_epoch,
        steps_per_epoch=config.steps_per_epoch or None,
        validation_data=dataset.test, verbose=verbose, callbacks=callbacks,
    )
    train_seconds = time.time() - start

    save_keras_atomic(net, run_dir / "model.keras")
    train_acc = trainer.evaluate(dataset.train, verbose=0, return_dict=True)["accuracy"]
    test_eval = trainer.evaluate(dataset.test, verbose=0, return_dict=True)
    test_loss, test_acc = test_eval["loss"], test_eval["accuracy"]
    metrics = {
        "model": config.model, "variant": config.variant, "dataset": config.dataset,
        "stage": config.stage, "steps_per_epoch": steps_per_epoch,
        "epochs": config.epochs, "train_accuracy": float(train_acc),
        "test_accuracy": float(test_acc), "test_loss": float(test_loss),
        "train_seconds_this_session": round(train_seconds, 1),
        "epochs_this_session": len(history.history.get("loss", [])),
        "stats": models.model_stats(net).as_dict(),
    }
    if export:
        metrics["export"] = _export_run(net, dataset, run_dir)
    atomic_write_json(run_dir / "metrics.json", metrics)
    return RunResult(run_dir, metrics)


def _export_run(net: keras.Model, dataset, run_dir: Path) -> dict:
    """Export to ``model.tflite`` and measure it on the whole test split."""
    from bnn_keras.export import export_model

    images, labels = [], []
    for x, y in dataset.test:
        images.append(x.numpy())
        labels.append(y.numpy())
    x_test, y_test = np.concatenate(images), np.concatenate(labels)
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
