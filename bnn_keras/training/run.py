"""A training run: folder layout, resumable checkpoints, metrics and export.

``runs/<name>/`` holds::

    config.json         the resolved TrainConfig
    checkpoints/        tf.train checkpoints (net, optimizer, epoch), one per epoch
    history.csv         per-epoch loss and accuracy
    model.keras         the final trained network
    metrics.json        train and test accuracy, timing, export agreement
    model.tflite        the LCE export
    export.json         the export report
"""

from __future__ import annotations

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
from bnn_keras.training.config import TrainConfig
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


def build_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam with the learning rate decaying linearly to zero over the run (ReActNet)."""
    schedule = keras.optimizers.schedules.PolynomialDecay(
        config.learning_rate, decay_steps=max(1, config.epochs * steps_per_epoch),
        end_learning_rate=0.0, power=1.0,
    )
    return keras.optimizers.Adam(schedule)


class _EpochCheckpoint(keras.callbacks.Callback):
    """Saves (net, optimizer, epoch) after every epoch; TF writes checkpoints atomically."""

    def __init__(self, manager: tf.train.CheckpointManager, epoch: tf.Variable):
        super().__init__()
        self.manager = manager
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if logs and any(not np.isfinite(v) for v in logs.values()):
            raise BnnError(f"loss became NaN/inf in epoch {epoch + 1}; the last good "
                           f"checkpoint is kept in {self.manager.directory}")
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


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
    dataset = data_lib.load(config.dataset, batch_size=config.batch_size, seed=config.seed)
    net = models.create(config.model, config.variant, num_classes=dataset.num_classes,
                        input_shape=dataset.input_shape)
    steps_per_epoch = int(tf.data.experimental.cardinality(dataset.train).numpy())
    train_data = dataset.train
    if config.steps_per_epoch:
        steps_per_epoch = config.steps_per_epoch
        train_data = train_data.repeat()
    trainer = TrainingModel(net, agc_clip=config.agc_clip)
    trainer.compile(
        optimizer=build_optimizer(config, steps_per_epoch),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
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
    initial_epoch = int(epoch.numpy())

    start = time.time()
    history = trainer.fit(
        train_data, epochs=config.epochs, initial_epoch=initial_epoch,
        steps_per_epoch=config.steps_per_epoch or None,
        validation_data=dataset.test, verbose=verbose,
        callbacks=[_EpochCheckpoint(manager, epoch),
                   keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True)],
    )
    train_seconds = time.time() - start

    save_keras_atomic(net, run_dir / "model.keras")
    _, train_acc = trainer.evaluate(dataset.train, verbose=0)
    test_loss, test_acc = trainer.evaluate(dataset.test, verbose=0)
    metrics = {
        "model": config.model, "variant": config.variant, "dataset": config.dataset,
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
