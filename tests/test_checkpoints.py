"""EpochCheckpoint: written beside validation, placed after the history row, index last."""

import threading
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.training.callbacks import CurvesPlot, HistoryLog
from bnn_keras.training.checkpoints import EpochCheckpoint, numbered_checkpoints
from bnn_keras.training.run_steps import evaluation_stream


def _setup(seed=0):
    keras.utils.set_random_seed(seed)
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                            keras.layers.Dense(3)])
    net.compile(keras.optimizers.Adam(1e-2),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(seed).normal(size=(32, 4)).astype("float32")
    y = (np.arange(32) % 3).astype("int32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    ckpt = tf.train.Checkpoint(net=net, optimizer=net.optimizer, epoch=epoch)
    return net, data, epoch, ckpt


class _Probe(keras.callbacks.Callback):
    """Before the checkpoint's epoch end: the epoch's checkpoint must not be there yet."""

    def __init__(self, directory):
        super().__init__()
        self.directory = directory
        self.seen = []
        self.validating = False

    def on_test_begin(self, logs=None):
        self.validating = True

    def on_test_batch_end(self, batch, logs=None):
        time.sleep(0.05)  # validation outlasts a thread's start by far

    def on_test_end(self, logs=None):
        self.validating = False

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append([p.name for p in numbered_checkpoints(self.directory)])


def test_writes_beside_validation_and_places_after_the_row(tmp_path, monkeypatch):
    net, data, epoch, ckpt = _setup()
    directory, first = tmp_path / "checkpoints", tmp_path / "checkpoints" / "first" / "ckpt-1"
    probe = _Probe(directory)
    threads, during_validation = [], []
    write = ckpt.write

    def recording_write(prefix, *args, **kwargs):
        threads.append(threading.current_thread().name)
        during_validation.append(probe.validating)
        return write(prefix, *args, **kwargs)

    monkeypatch.setattr(ckpt, "write", recording_write)
    cb = EpochCheckpoint(directory, epoch, ckpt, first, background=True)
    net.fit(data, validation_data=data, epochs=4, verbose=0,
            callbacks=[HistoryLog(tmp_path / "history.csv"), probe, cb])
    # the first epoch (tracing) writes at its end, in the main thread; later ones beside
    # their validation, in the checkpoint thread
    assert threads[0] == threading.main_thread().name and not during_validation[0]
    assert all(t.startswith("checkpoint") for t in threads[1:]) and len(threads) == 4
    assert all(during_validation[1:])
    # at each epoch's end, before this callback: only the earlier epochs' checkpoints
    assert probe.seen == [[], ["ckpt-1"], ["ckpt-2", "ckpt-1"], ["ckpt-3", "ckpt-2"]]
    assert [p.name for p in numbered_checkpoints(directory)] == ["ckpt-4", "ckpt-3"]
    assert tf.train.latest_checkpoint(str(directory)) == str(directory / "ckpt-4")
    assert not (directory / ".pending").exists()
    assert int(epoch.numpy()) == 4
    # the files hold the state the run ended with, and the first one survives the sweep
    fresh, _, fresh_epoch, fresh_ckpt = _setup(seed=1)
    fresh_ckpt.read(str(directory / "ckpt-4")).assert_existing_objects_matched()
    for a, b in zip(net.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(fresh_epoch.numpy()) == 4
    fresh_ckpt.read(str(first)).assert_existing_objects_matched()
    assert int(fresh_epoch.numpy()) == 1
    # a resumed fit traces its evaluation again: its first epoch writes at its end too
    net.fit(data, validation_data=data, epochs=6, initial_epoch=4, verbose=0,
            callbacks=[probe, cb])
    assert threads[4] == threading.main_thread().name and not during_validation[4]
    assert threads[5].startswith("checkpoint") and during_validation[5]


def _second_epoch_fails(net, data, validation, cb, match: str) -> None:
    """Epoch 2 fails with a one-line error matching ``match``, and the checkpoint folder
    holds epoch 1's checkpoint alone, with nothing left pending."""
    with pytest.raises(BnnError, match=match):
        net.fit(data, validation_data=validation, epochs=2, initial_epoch=1, verbose=0,
                callbacks=[cb])
    assert [p.name for p in numbered_checkpoints(cb.directory)] == ["ckpt-1"]
    assert not (cb.directory / ".pending").exists()


@pytest.mark.parametrize("background", [False, True])
def test_a_failed_write_is_one_line_and_places_nothing(tmp_path, monkeypatch, background):
    net, data, epoch, ckpt = _setup()
    directory = tmp_path / "checkpoints"
    cb = EpochCheckpoint(directory, epoch, ckpt, background=background)
    net.fit(data, validation_data=data, epochs=1, verbose=0, callbacks=[cb])

    def failing_write(prefix, *args, **kwargs):
        raise OSError(28, "No space left on device\nsecond line")

    monkeypatch.setattr(ckpt, "write", failing_write)
    _second_epoch_fails(net, data, data, cb, "cannot write the checkpoint of epoch 2 .*No space")


def test_a_non_finite_validation_discards_the_write(tmp_path):
    net, data, epoch, ckpt = _setup()
    directory = tmp_path / "checkpoints"
    cb = EpochCheckpoint(directory, epoch, ckpt, background=True)
    net.fit(data, validation_data=data, epochs=1, verbose=0, callbacks=[cb])
    bad = data.map(lambda x, y: (x * np.float32(np.inf), y))
    _second_epoch_fails(net, data, bad, cb, "NaN/inf in epoch 2.*ckpt-1")


def test_newer_leftovers_are_kept_and_older_swept(tmp_path):
    # a resume from ckpt-1 past damaged ckpt-5: the new ckpt-2 and ckpt-3 must survive
    net, data, epoch, ckpt = _setup()
    directory = tmp_path / "checkpoints"
    ckpt.write(str(directory / "ckpt-5"))
    cb = EpochCheckpoint(directory, epoch, ckpt)
    net.fit(data, epochs=3, verbose=0, callbacks=[cb])
    assert [p.name for p in numbered_checkpoints(directory)] == ["ckpt-5", "ckpt-3", "ckpt-2"]
    assert tf.train.latest_checkpoint(str(directory)) == str(directory / "ckpt-3")


def test_a_stale_pending_write_is_cleared(tmp_path):
    net, data, epoch, ckpt = _setup()
    directory = tmp_path / "checkpoints"
    stale = directory / ".pending" / "ckpt-7.index"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"killed mid-write")
    net.fit(data, epochs=1, verbose=0, callbacks=[EpochCheckpoint(directory, epoch, ckpt)])
    assert not stale.parent.exists()
    assert [p.name for p in numbered_checkpoints(directory)] == ["ckpt-1"]


def test_curves_are_drawn_in_a_thread_and_complete_at_the_end(tmp_path, monkeypatch):
    import bnn_keras.training.callbacks as callbacks

    threads = []
    plot = callbacks.plot_curves

    def recording_plot(*args):
        threads.append(threading.current_thread().name)
        return plot(*args)

    monkeypatch.setattr(callbacks, "plot_curves", recording_plot)
    net, data, _, _ = _setup()
    png = tmp_path / "curves.png"
    net.fit(data, validation_data=data, epochs=2, verbose=0,
            callbacks=[HistoryLog(tmp_path / "history.csv"),
                       CurvesPlot(tmp_path / "history.csv", png)])
    assert len(threads) == 2 and all(t.startswith("curves") for t in threads)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))


def test_evaluation_regroups_the_split(tmp_path):
    from bnn_keras.training.config import TrainConfig

    split = tf.data.Dataset.range(600).batch(64)
    stream = evaluation_stream(TrainConfig(), split)
    sizes = [int(b.shape[0]) for b in stream]
    assert sizes == [256, 256, 88]
    assert [int(v) for b in stream for v in b] == list(range(600))
    # no autotuning: deleting a tuned iterator can wait idle for its tuner's pause
    assert stream.options().autotune.enabled is False
    config = TrainConfig(batch_size=512, eval_batch_size=0)
    assert config.evaluation_batch == 512
    assert TrainConfig(eval_batch_size=100).evaluation_batch == 100
    with pytest.raises(BnnError, match="eval batch size must be >= 0"):
        TrainConfig(eval_batch_size=-1)


def test_training_stream_is_untuned():
    from bnn_keras.training import run_steps
    from bnn_keras.training.config import TrainConfig

    # fit replaces its training iterator every epoch; deleting a tuned one idled up to 40 s
    for strategy in ("default", "multiworker"):
        config = TrainConfig(strategy=strategy)
        stream, steps = run_steps._train_stream(config, run_steps.load_data(config))
        assert steps == 23
        assert stream.options().autotune.enabled is False
    policy = stream.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA
