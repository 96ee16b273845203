"""The three steps of a training run (see :func:`bnn_keras.training.run.train`).

:func:`build` makes what a run trains with (data, network, trainer, checkpoint; restored
when resuming), :func:`fit` trains from the restored epoch on and evaluates, and
:func:`finish` writes ``model.keras``, the export (``model.tflite``, ``model.report.json``)
and ``metrics.json``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf
import tf_keras as keras

from bnn_keras import data as data_lib
from bnn_keras import models
from bnn_keras.files import atomic_write_json
from bnn_keras.keras_files import save_keras_atomic
from bnn_keras.models.dtypes import float32_model
from bnn_keras.quantize import quantize_model
from bnn_keras.training.callbacks import CurvesPlot, HistoryLog, StopOnNaN, TemperatureSchedule
from bnn_keras.training.checkpoints import EpochCheckpoint
from bnn_keras.training.config import TrainConfig
from bnn_keras.training.limits import check_batch_fits
from bnn_keras.training.precision import precision_policy
from bnn_keras.training.resume import has_checkpoint, restore_newest, run_label
from bnn_keras.training.run_folder import RunFolder
from bnn_keras.training.train_model import TrainingModel, build_trainer


@dataclass
class RunSetup:
    """What a run trains with: the data, the step count, the network and its trainer."""

    dataset: data_lib.Dataset
    train_data: tf.data.Dataset
    steps_per_epoch: int
    net: keras.Model
    trainer: TrainingModel
    epoch: tf.Variable
    checkpoint: tf.train.Checkpoint
    replicas: int


@dataclass
class Fitted:
    """What :func:`fit` measured."""

    epochs_this_session: int
    train_seconds: float
    train_accuracy: float
    test_accuracy: float
    test_loss: float


def build(config: TrainConfig, strategy: tf.distribute.Strategy, folder: RunFolder, *,
          resume: bool, chief: bool, why: str = "") -> RunSetup:
    """Data, network, trainer and checkpoint, restored when resuming (``why`` says why
    this folder, for the message)."""
    from bnn_keras.training.distribute import with_sync_batch_norm

    dataset = load_data(config)
    check_batch_fits(config.batch_size, config.dataset, dataset.train_size)
    train_data, steps_per_epoch = _train_stream(config, dataset)
    with strategy.scope(), precision_policy(config.precision):
        # --init-from fills a network that no checkpoint will: a fresh run, or a resumed
        # one killed before its first epoch ended
        from_init = bool(config.init_from) and not (resume and has_checkpoint(folder.path))
        net = _network(config, dataset, folder, from_init=from_init,
                       report=chief and not resume)
        if config.sync_bn:
            net = with_sync_batch_norm(net)
        trainer = _trainer(config, dataset, net, steps_per_epoch)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = tf.train.Checkpoint(net=net, optimizer=trainer.optimizer, epoch=epoch)
    if resume:
        _restore(checkpoint, epoch, folder, why)
    return RunSetup(dataset, train_data, steps_per_epoch, net, trainer, epoch, checkpoint,
                    strategy.num_replicas_in_sync)


def load_data(config: TrainConfig) -> data_lib.Dataset:
    """The dataset of ``config``, with its data options."""
    return data_lib.load(config.dataset, options=config.data_options)


def _train_stream(config: TrainConfig, dataset) -> tuple[tf.data.Dataset, int]:
    """The training pipeline as ``fit`` reads it, and the steps of one epoch."""
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
    return untuned(train_data), steps_per_epoch


def untuned(stream: tf.data.Dataset) -> tf.data.Dataset:
    """``stream`` without tf.data's autotuning, as ``fit`` reads the run's streams.

    ``fit`` deletes its iterators after every epoch and every validation, and deleting a
    tuned one (TF 2.19) at times left the process idle: up to 2.5 s after a validation,
    40 s before a training epoch (zoo/results.md, "The validation iterator's idle wait",
    "The training iterator's idle wait"). Untuned, a map with
    ``num_parallel_calls=AUTOTUNE`` still runs on every core and a ``prefetch(AUTOTUNE)``
    still reads ahead.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return stream.with_options(options)


def evaluation_stream(config: TrainConfig, split: tf.data.Dataset) -> tf.data.Dataset:
    """``split`` (a batched pipeline) regrouped into batches of ``config.evaluation_batch``
    images, as the run evaluates it.

    Untuned (:func:`untuned`), prefetching one batch: the stream only regroups prepared
    batches.
    """
    return untuned(split.unbatch().batch(config.evaluation_batch).prefetch(1))


def _network(config: TrainConfig, dataset, folder: RunFolder, *, from_init: bool,
             report: bool) -> keras.Model:
    """The network, with the changes its stage, STE clip and ``quantize`` ask for, and its
    weights from ``config.init_from`` when ``from_init`` (the report written when ``report``)."""
    from bnn_keras.training import two_step

    net = models.create(config.model, config.variant, num_classes=dataset.num_classes,
                        input_shape=dataset.input_shape, **config.model_options)
    if config.ste_clip:
        two_step.set_ste_clip(net, config.ste_clip)
    if config.stage == 1:
        two_step.set_real_weights(net)
    if from_init:
        loaded = two_step.init_from(net, config.init_from, config.init_skip)
        if report:
            atomic_write_json(folder.init_report, loaded.as_dict())
            print(loaded.summary(), flush=True)
    return quantize_model(net) if config.quantize == "int8" else net


def _trainer(config: TrainConfig, dataset, net: keras.Model,
             steps_per_epoch: int) -> TrainingModel:
    teacher, assistants = None, []
    if config.teacher:
        from bnn_keras.training.distill import load_teacher

        kwargs = dict(num_classes=dataset.num_classes, input_shape=dataset.input_shape,
                      mean=dataset.mean, std=dataset.std)
        teacher = load_teacher(config.teacher, **kwargs)
        assistants = [load_teacher(a, **kwargs) for a in config.assistants]
    return build_trainer(config, net, dataset.num_classes, steps_per_epoch, teacher,
                         assistants)


def _restore(checkpoint: tf.train.Checkpoint, epoch: tf.Variable, folder: RunFolder,
             why: str) -> None:
    """Restore the newest checkpoint that loads, and say which (and why this folder)."""
    used = restore_newest(checkpoint, folder.path)
    because = f" ({why})" if why else ""
    if used is not None:
        print(f"resuming {folder.path} after epoch {int(epoch.numpy())} from "
              f"{run_label(folder.path, used)}{because}", flush=True)
    else:
        print(f"resuming {folder.path}{because}: it has no checkpoint, so it starts again "
              "from epoch 1", flush=True)


def fit(config: TrainConfig, setup: RunSetup, folder: RunFolder, *, chief: bool,
        verbose: int) -> Fitted:
    """Train from the restored epoch on, then evaluate on both splits."""
    trainer, dataset = setup.trainer, setup.dataset
    # workers other than the chief save to a scratch folder (saving may need every worker)
    scratch = None if chief else Path(tempfile.mkdtemp(prefix="bnn-keras-worker-"))
    try:
        callbacks = _callbacks(config, setup, folder, scratch)
        test = evaluation_stream(config, dataset.test)
        start = time.time()
        try:
            history = trainer.fit(
                setup.train_data, epochs=config.epochs, initial_epoch=int(setup.epoch.numpy()),
                steps_per_epoch=config.steps_per_epoch or None,
                validation_data=test, verbose=verbose if chief else 0, callbacks=callbacks,
            )
        finally:
            # Keras skips on_train_end when fit raises: the curves thread's last drawing is
            # still finished, a checkpoint written for an unfinished epoch still dropped
            for cb in callbacks:
                if isinstance(cb, (CurvesPlot, EpochCheckpoint)):
                    cb.on_train_end()
        train_seconds = time.time() - start
        train_acc = trainer.evaluate(evaluation_stream(config, dataset.train), verbose=0,
                                     return_dict=True)["accuracy"]
        test_eval = trainer.evaluate(test, verbose=0, return_dict=True)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return Fitted(epochs_this_session=len(history.history.get("loss", [])),
                  train_seconds=train_seconds, train_accuracy=float(train_acc),
                  test_accuracy=float(test_eval["accuracy"]),
                  test_loss=float(test_eval["loss"]))


def _callbacks(config: TrainConfig, setup: RunSetup, folder: RunFolder,
               scratch: Path | None) -> list[keras.callbacks.Callback]:
    """Checkpoints, NaN stop and (on the chief) the logs; the temperature and teacher
    schedules when the run has them."""
    chief = scratch is None
    # beside validation only on one device: other strategies' writes may need every worker
    checkpoint_cb = EpochCheckpoint(scratch or folder.checkpoints, setup.epoch,
                                    setup.checkpoint, folder.first_checkpoint if chief else None,
                                    background=config.strategy == "default")
    callbacks = [StopOnNaN(folder.checkpoints, checkpoint_cb)]
    if chief:
        # an epoch's history row is written before its checkpoint: a run killed in between
        # repeats that epoch on resume, and its new row replaces the stale one
        callbacks += [HistoryLog(folder.history), checkpoint_cb,
                      CurvesPlot(folder.history, folder.curves),
                      keras.callbacks.TensorBoard(str(folder.tensorboard),
                                                  write_graph=False, profile_batch=0)]
    else:
        callbacks.append(checkpoint_cb)
    if config.weight_temperature > 0:
        callbacks.append(TemperatureSchedule(setup.net, config.weight_temperature,
                                             config.temperature_decay))
    trainer = setup.trainer
    if trainer.assistants:
        from bnn_keras.training.distill import TeacherSwitch

        callbacks.append(TeacherSwitch(trainer.assistant_index, len(trainer.assistants),
                                       config.epochs, config.assistant_epochs))
    return callbacks


def finish(config: TrainConfig, setup: RunSetup, fitted: Fitted, folder: RunFolder, *,
           chief: bool, export: bool) -> dict:
    """The run's metrics; on the chief, ``model.keras``, the export (unless ``export`` is
    false or the run is stage 1) and ``metrics.json`` written too."""
    net = float32_model(setup.net)  # what is saved and deployed: float32
    metrics = {
        "model": config.model, "variant": config.variant, "dataset": config.dataset,
        "stage": config.stage, "steps_per_epoch": setup.steps_per_epoch,
        "epochs": config.epochs, "train_accuracy": fitted.train_accuracy,
        "test_accuracy": fitted.test_accuracy, "test_loss": fitted.test_loss,
        "train_seconds_this_session": round(fitted.train_seconds, 1),
        "epochs_this_session": fitted.epochs_this_session,
        "strategy": config.strategy, "replicas": setup.replicas,
        "deterministic": config.deterministic, "precision": config.precision,
        "quantize": config.quantize,
        "stats": models.model_stats(net).as_dict(),
    }
    if not chief:
        return metrics
    save_keras_atomic(net, folder.model)
    if export and config.stage != 1:  # stage 1 has real-valued weights: nothing to deploy
        if setup.replicas > 1 or config.strategy != "default":
            from bnn_keras.keras_files import load_keras_model

            net = load_keras_model(folder.model)  # a plain copy, outside the scope
        metrics["export"] = export_run(net, setup.dataset, folder)
    atomic_write_json(folder.metrics, metrics)
    return metrics


def export_run(net: keras.Model, dataset: data_lib.Dataset, folder: RunFolder) -> dict:
    """Export to ``model.tflite`` with its report (``model.report.json``), checked on the
    whole test split (:func:`bnn_keras.export.export_model`, as ``bnn-keras export``);
    the figures ``metrics.json`` keeps."""
    from bnn_keras.export import LabelledSplit, export_model

    test = LabelledSplit(dataset.name, "test", *data_lib.to_arrays(dataset.test))
    report = export_model(net, folder.tflite, test, report_path=folder.export_report)
    return {
        "tflite_bytes": report.size_bytes,
        "all_binary_convs_lowered": report.all_lowered,
        "top1_agreement_test_split": report.agreement.top1_agreement,
        "max_abs_diff": report.agreement.max_abs_diff,
        "tflite_test_accuracy": report.split_check.tflite_accuracy,
    }
