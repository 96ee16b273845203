"""Callbacks of a run: NaN stop, history CSV, curves PNG, BNext's weight temperature (the
checkpoints' callback is :class:`bnn_keras.training.checkpoints.EpochCheckpoint`)."""

from __future__ import annotations

import csv
import io
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tf_keras as keras

from bnn_keras.errors import BnnError, first_line
from bnn_keras.files import atomic_write_text
from bnn_keras.training.checkpoints import EpochCheckpoint, kept_checkpoint_note


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

    def on_epoch_end(self, epoch, logs=None):
        rows = read_history(self.path)
        rows[epoch] = {"epoch": epoch, **{k: _csv_value(v) for k, v in (logs or {}).items()}}
        keys = sorted({k for r in rows.values() for k in r} - {"epoch"})
        out = io.StringIO()
        writer = csv.DictWriter(out, ["epoch", *keys], restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows[e] for e in sorted(rows))
        atomic_write_text(self.path, out.getvalue())


def read_history(path: str | Path) -> dict[int, dict]:
    """The rows of ``history.csv`` by epoch (none when there is no file).

    A file that cannot be read or decoded is a one-line :class:`BnnError` naming it; a
    resumed run calls this before it trains, so that no epoch is trained only to fail at
    its end.
    """
    path = Path(path)
    if not path.exists():
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError, csv.Error) as err:  # ValueError: UnicodeDecodeError
        raise BnnError(f"cannot read {path}: {first_line(err)} (it holds the per-epoch "
                       "figures; repair or remove it to continue)") from None
    epochs = {}
    for row in rows:
        epoch = (row.get("epoch") or "").strip()
        if epoch.isascii() and epoch.isdigit():  # extra fields (key None) are dropped
            epochs[int(epoch)] = {k: v for k, v in row.items() if k is not None}
    return epochs


def _csv_value(value):
    return float(value) if np.isscalar(value) else value


def plot_curves(history_csv: str | Path, png: str | Path) -> Path | None:
    """Loss and accuracy per epoch (train and validation) from ``history.csv`` to a PNG.

    Draws on a figure of its own with matplotlib's Agg canvas (no display, no pyplot
    state), so it may run in any thread. Returns the path, or ``None`` if the history
    is empty.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
    fig = Figure(figsize=(9, 3.5))
    FigureCanvasAgg(fig)
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "--s")):
            key = prefix + metric
            if key in by_epoch[epochs[0]]:
                values = [float(by_epoch[e][key]) for e in epochs]
                ax.plot(x, values, style, label="validation" if prefix else "train", ms=3)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    png = Path(png)
    tmp = png.with_name(f".{png.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(png)
    return png


class CurvesPlot(keras.callbacks.Callback):
    """Redraws the training-curves PNG after every epoch from ``history.csv`` (so after
    :class:`HistoryLog`), in a thread beside the next epoch's training; the last drawing
    is waited for when training ends. A failed drawing is skipped with one line: the
    curves are a view of ``history.csv``, which holds the numbers."""

    def __init__(self, history_csv: str | Path, png: str | Path):
        super().__init__()
        self.history_csv = history_csv
        self.png = png
        self._executor: ThreadPoolExecutor | None = None
        self._drawing: Future | None = None

    def on_epoch_end(self, epoch, logs=None):
        self._wait()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="curves")
        self._drawing = self._executor.submit(plot_curves, self.history_csv, self.png)

    def on_train_end(self, logs=None):
        self._wait()
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def _wait(self) -> None:
        if self._drawing is not None:
            error = self._drawing.exception()
            self._drawing = None
            if error is not None:
                print(f"training curves not drawn ({self.png}): {error}", flush=True)
