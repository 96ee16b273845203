"""Callbacks of a run: checkpoints (rolling + the permanent first), NaN stop, history CSV,
curves PNG."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.io import atomic_write_text
from bnn_keras.training.run_folder import RunFolder


def first_checkpoint_prefix(run_dir: str | Path) -> Path:
    """The permanent checkpoint written after the first epoch (``checkpoints/first/ckpt-1``).

    Restore the network with ``tf.train.Checkpoint(net=net).read(str(prefix))``.
    """
    return RunFolder(run_dir).first_checkpoint


def kept_checkpoint_note(checkpoint_dir: str | Path) -> str:
    """What a stopped run still has: its newest checkpoint, or (when no epoch finished)
    what its folder holds, so that no message points to a folder that is not there."""
    checkpoint_dir = Path(checkpoint_dir)
    last = tf.train.latest_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None
    if last:
        return (f"the last good checkpoint {Path(last).name} (after epoch "
                f"{last.rsplit('-', 1)[-1]}) is kept in {checkpoint_dir}")
    run_dir = checkpoint_dir.parent
    held = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    return ("no epoch had finished, so there is no checkpoint; the run folder "
            f"{run_dir} holds {', '.join(held) or 'nothing'}")


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves (net, optimizer, epoch) after every epoch with a ``CheckpointManager``
    (TF writes checkpoints atomically), and once, after the first epoch, a permanent copy
    at :func:`first_checkpoint_prefix` that the rolling manager never deletes."""

    def __init__(self, manager: tf.train.CheckpointManager, epoch: tf.Variable,
                 checkpoint: tf.train.Checkpoint | None = None,
                 first_prefix: str | Path | None = None):
        super().__init__()
        self.manager = manager
        self.epoch = epoch
        self.checkpoint = checkpoint
        self.first_prefix = Path(first_prefix) if first_prefix else None
        self.diverged = False

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged or (logs and any(not np.isfinite(v) for v in logs.values()
                                          if np.isscalar(v))):
            raise BnnError(f"loss became NaN/inf in epoch {epoch + 1}; "
                           f"{kept_checkpoint_note(self.manager.directory)}")
        self.epoch.assign(epoch + 1)
        # the permanent copy first: a kill between the two writes then only repeats epoch 1
        if (epoch == 0 and self.checkpoint is not None and self.first_prefix is not None
                and not Path(f"{self.first_prefix}.index").exists()):
            self.first_prefix.parent.mkdir(parents=True, exist_ok=True)
            self.checkpoint.write(str(self.first_prefix))
        self.manager.save(checkpoint_number=epoch + 1)


class TemperatureSchedule(keras.callbacks.Callback):
    r"""BNext's weight temperature: before epoch \(e\) (0-based) every
    :class:`~bnn_keras.quantizers.TemperatureSign` of ``net`` gets \(T_0 \cdot d^e\).

    BNext's script multiplies each ``HardBinaryConv`` temperature by ``d = 0.9`` after
    every epoch from \(T_0 = 1\) (``adjust_temperature``), so its weights are
    ``clip(w / T, -1, 1)`` until \(T < 10^{-7}\), about epoch 153. Set from the epoch, so
    a resumed run continues where it was.
    """

    def __init__(self, net: keras.Model, initial: float, decay: float):
        super().__init__()
        from bnn_keras.quantizers import TemperatureSign

        self.quantizers = [layer.kernel_quantizer for layer in net.layers
                           if isinstance(getattr(layer, "kernel_quantizer", None),
                                         TemperatureSign)]
        self.initial = float(initial)
        self.decay = float(decay)

    def on_epoch_begin(self, epoch, logs=None):
        value = self.initial * self.decay**epoch
        for quantizer in self.quantizers:
            quantizer.temperature.assign(value)


class StopOnNaN(keras.callbacks.Callback):
    """Stops at the first non-finite training loss with a message naming epoch and step.

    Nothing is saved after the bad step: the rolling checkpoints keep the last good epoch.
    """

    def __init__(self, checkpoint_dir: str | Path, checkpoint_cb: EpochCheckpoint | None = None):
        super().__init__()
        self.checkpoint_dir = Path(checkpoint_dir)
        self.checkpoint_cb = checkpoint_cb
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or np.isfinite(float(loss)):
            return
        if self.checkpoint_cb is not None:
            self.checkpoint_cb.diverged = True
        raise BnnError(f"training diverged: the loss became NaN/inf in epoch {self._epoch + 1}, "
                       f"step {batch + 1}; {kept_checkpoint_note(self.checkpoint_dir)}")


class HistoryLog(keras.callbacks.Callback):
    """``history.csv``: one row per epoch, written (atomically) after each epoch.

    A resumed run repeats the epochs after its checkpoint; their old rows stay until the
    repeated epoch replaces them, so a run stopped again loses no row it had. Rows are
    kept in epoch order; columns are the union of every row's.
    """

    def __init__(self, history_csv: str | Path):
        super().__init__()
        self.path = Path(history_csv)

    def _rows(self) -> dict[int, dict]:
        if not self.path.exists():
            return {}
        with self.path.open(newline="") as f:
            return {int(r["epoch"]): r for r in csv.DictReader(f)
                    if (r.get("epoch") or "").strip().isdigit()}

    def on_epoch_end(self, epoch, logs=None):
        rows = self._rows()
        rows[epoch] = {"epoch": epoch, **{k: _csv_value(v) for k, v in (logs or {}).items()}}
        keys = sorted({k for r in rows.values() for k in r} - {"epoch"})
        out = io.StringIO()
        writer = csv.DictWriter(out, ["epoch", *keys], restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows[e] for e in sorted(rows))
        atomic_write_text(self.path, out.getvalue())


def _csv_value(value):
    return float(value) if np.isscalar(value) else value


def plot_curves(history_csv: str | Path, png: str | Path) -> Path | None:
    """Loss and accuracy per epoch (train and validation) from ``history.csv`` to a PNG.

    Uses matplotlib's Agg backend (no display). Returns the path, or ``None`` if the
    history is empty.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(history_csv)
    if not path.exists():
        return None
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("epoch", "").strip().isdigit()]
    if not rows:
        return None
    by_epoch = {int(r["epoch"]): r for r in rows}  # a resumed run may repeat an epoch
    epochs = sorted(by_epoch)
    x = [e + 1 for e in epochs]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "--s")):
            key = prefix + metric
            if key in by_epoch[epochs[0]]:
                values = [float(by_epoch[e][key]) for e in epochs]
                ax.plot(x, values, style, label="validation" if prefix else "train", ms=3)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    png = Path(png)
    tmp = png.with_name(f".{png.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(png)
    return png


class CurvesPlot(keras.callbacks.Callback):
    """Redraws the training-curves PNG after every epoch (CSVLogger must come first)."""

    def __init__(self, history_csv: str | Path, png: str | Path):
        super().__init__()
        self.history_csv = history_csv
        self.png = png

    def on_epoch_end(self, epoch, logs=None):
        plot_curves(self.history_csv, self.png)
