"""A run's checkpoints on disk and the callback that writes them.

``checkpoints/ckpt-N`` holds (net, optimizer, epoch) after epoch N; the two newest are
kept. ``checkpoints/first/ckpt-1``, the state after the first epoch, is never deleted. A
checkpoint counts once its ``.index`` file exists: :class:`EpochCheckpoint` writes under
``checkpoints/.pending/`` and moves the files into place index last, and deletes index
first, so a kill at any moment leaves every listed checkpoint whole or absent.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.files import atomic_write_text
from bnn_keras.training.run_folder import CHECKPOINT_DIR, RunFolder

KEEP = 2  # rolling checkpoints kept: the newest and the one before, should it be damaged
PENDING = ".pending"


def first_checkpoint_prefix(run_dir: str | Path) -> Path:
    """The permanent checkpoint written after the first epoch (``checkpoints/first/ckpt-1``).

    Restore the network with ``tf.train.Checkpoint(net=net).read(str(prefix))``.
    """
    return RunFolder(run_dir).first_checkpoint


def numbered_checkpoints(directory: str | Path) -> list[Path]:
    """The ``ckpt-N`` prefixes in ``directory`` that have an index file, newest first."""
    numbered = []
    for index in Path(directory).glob("ckpt-*.index"):
        number = index.name[len("ckpt-"):-len(".index")]
        if number.isdigit():
            numbered.append((int(number), index.with_suffix("")))
    return [prefix for _, prefix in sorted(numbered, reverse=True)]


def rolling_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's ``checkpoints/ckpt-N`` prefixes that have an index file, newest first."""
    return numbered_checkpoints(Path(run_dir) / CHECKPOINT_DIR)


def kept_checkpoint_note(checkpoint_dir: str | Path) -> str:
    """What a stopped run still has: its newest checkpoint, or (when no epoch finished)
    what its folder holds, so that no message points to a folder that is not there."""
    checkpoint_dir = Path(checkpoint_dir)
    kept = numbered_checkpoints(checkpoint_dir)
    if kept:
        return (f"the last good checkpoint {kept[0].name} (after epoch "
                f"{kept[0].name.rsplit('-', 1)[-1]}) is kept in {checkpoint_dir}")
    run_dir = checkpoint_dir.parent
    held = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    return ("no epoch had finished, so there is no checkpoint; the run folder "
            f"{run_dir} holds {', '.join(held) or 'nothing'}")


def write_state(directory: Path, kept: list[Path]) -> None:
    """TensorFlow's ``checkpoint`` state file (a ``CheckpointState`` text proto), so that
    ``tf.train.latest_checkpoint(directory)`` names the last of ``kept`` (oldest first).

    Names are relative, as TensorFlow allows: the run folder may move.
    """
    lines = [f'model_checkpoint_path: "{kept[-1].name}"']
    lines += [f'all_model_checkpoint_paths: "{p.name}"' for p in kept]
    atomic_write_text(directory / "checkpoint", "\n".join(lines) + "\n")


def _files(prefix: Path) -> list[Path]:
    """The files of the checkpoint at ``prefix``, its data shards first, its index last."""
    data = sorted(prefix.parent.glob(f"{prefix.name}.data-*"))
    index = Path(f"{prefix}.index")
    return data + ([index] if index.exists() else [])


def _delete(prefix: Path) -> None:
    """Delete a checkpoint, index first: it stops counting before its data goes."""
    for path in reversed(_files(prefix)):
        path.unlink(missing_ok=True)


def _place(source: Path, target: Path, *, keep_source: bool) -> None:
    """Move (or, with ``keep_source``, hard-link or copy) checkpoint ``source`` to prefix
    ``target``, replacing what is there; each file lands whole, the index last."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _delete(target)
    for path in _files(source):
        dest = target.parent / (target.name + path.name[len(source.name):])
        if keep_source:
            tmp = dest.with_name(f".{dest.name}.tmp")
            tmp.unlink(missing_ok=True)
            try:
                os.link(path, tmp)
            except OSError:  # another file system, or no hard links
                shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        else:
            os.replace(path, dest)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves (net, optimizer, epoch) after every epoch as ``ckpt-N`` in ``directory``
    (the :data:`KEEP` newest kept, the TF ``checkpoint`` state file updated) and once,
    after the first epoch, the permanent copy at ``first_prefix``.

    With ``background``, the write starts when the epoch's validation does and runs in a
    thread beside it: validation reads the weights and changes none, so the files hold
    the state the epoch ended with. It is moved into place at the epoch's end, after the
    callbacks before this one (the history row) have run, so a checkpoint never exists
    without its row. Without validation, or without ``background``, the write happens at
    the epoch's end. A non-finite loss discards the epoch's write and stops the run.
    """

    def __init__(self, directory: str | Path, epoch: tf.Variable,
                 checkpoint: tf.train.Checkpoint, first_prefix: str | Path | None = None,
                 *, background: bool = False):
        super().__init__()
        self.directory = Path(directory)
        self.epoch = epoch
        self.checkpoint = checkpoint
        self.first_prefix = Path(first_prefix) if first_prefix else None
        self.background = background
        self.diverged = False
        self._epoch = 0
        self._validated = False  # a validation has run in this fit: its function is traced
        self._writing: tuple[int, Path, Future] | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def pending_dir(self) -> Path:
        return self.directory / PENDING

    def on_train_begin(self, logs=None):
        shutil.rmtree(self.pending_dir, ignore_errors=True)  # a killed run's unfinished write
        self._validated = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_test_begin(self, logs=None):
        # fit's validation; the first one of a fit (a resumed one's too) also traces the
        # evaluation, so that epoch writes at its end, with nothing else running
        if self.background and self._validated and self._writing is None:
            self._start(self._epoch, in_thread=True)

    def on_test_end(self, logs=None):
        self._validated = True

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged or (logs and any(not np.isfinite(v) for v in logs.values()
                                          if np.isscalar(v))):
            self._discard()
            raise BnnError(f"loss became NaN/inf in epoch {epoch + 1}; "
                           f"{kept_checkpoint_note(self.directory)}")
        if self._writing is None or self._writing[0] != epoch:
            self._discard()
            self._start(epoch, in_thread=False)  # nothing left to overlap with
        self._finish()

    def on_train_end(self, logs=None):
        self._discard()  # only left when fit stopped between validation and epoch end
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def _start(self, epoch: int, *, in_thread: bool) -> None:
        self.epoch.assign(epoch + 1)
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        prefix = self.pending_dir / f"ckpt-{epoch + 1}"
        future: Future = Future()
        if in_thread:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="checkpoint")
            future = self._executor.submit(self.checkpoint.write, str(prefix))
        else:
            try:
                future.set_result(self.checkpoint.write(str(prefix)))
            except Exception as err:  # noqa: BLE001 - reported by _finish, as a thread's
                future.set_exception(err)
        self._writing = (epoch, prefix, future)

    def _finish(self) -> None:
        epoch, prefix, future = self._writing
        self._writing = None
        error = future.exception()
        if error is not None:
            shutil.rmtree(self.pending_dir, ignore_errors=True)
            lines = [line for line in str(error).splitlines() if line.strip()]
            raise BnnError(f"cannot write the checkpoint of epoch {epoch + 1} in "
                           f"{self.directory}: {lines[0] if lines else type(error).__name__}")
        # the permanent copy first: a kill between the two only repeats epoch 1
        if (epoch == 0 and self.first_prefix is not None
                and not Path(f"{self.first_prefix}.index").exists()):
            _place(prefix, self.first_prefix, keep_source=True)
        written = self.directory / f"ckpt-{epoch + 1}"
        _place(prefix, written, keep_source=False)
        # older ones beyond KEEP go; newer ones are a resumed run's damaged leftovers, which
        # its coming epochs replace
        older = [p for p in numbered_checkpoints(self.directory) if _number(p) < epoch + 1]
        for old in older[KEEP - 1:]:
            _delete(old)
        write_state(self.directory, [*reversed(older[:KEEP - 1]), written])
        _remove_if_empty(self.pending_dir)

    def _discard(self) -> None:
        """Wait for a write in progress and delete its files."""
        if self._writing is None:
            return
        self._writing[2].exception()  # waits; the error, if any, goes with the files
        self._writing = None
        shutil.rmtree(self.pending_dir, ignore_errors=True)
        _remove_if_empty(self.directory)


def _number(prefix: Path) -> int:
    return int(prefix.name.rsplit("-", 1)[-1])


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty, or not there
        pass
