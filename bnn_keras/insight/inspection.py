"""Per-layer statistics of a trained BNN: latent weights, sign flips, WS gains, and the
activation scale after every residual block."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from bnn_keras.errors import BnnError, first_line
from bnn_keras.export.fold import binary_conv_layers
from bnn_keras.files import atomic_write_files, figure_png
from bnn_keras.variables import latent_variable

NEAR_ZERO = 0.1  # |w| < NEAR_ZERO * std(w): a tenth of a std away from flipping


@dataclass
class LayerStats:
    """One binary layer: latent weights and their binarised signs."""

    layer: str
    weights: int
    latent_std: float
    near_zero_share: float
    sign_flip_ratio: float | None
    gain_mean: float | None
    gain_min: float | None
    gain_max: float | None


def binarizing_view(layer: keras.layers.Layer, latent: np.ndarray) -> np.ndarray:
    """The values whose sign is deployed: the standardised kernel for WS layers, the
    latent kernel otherwise."""
    if hasattr(layer, "eps") and hasattr(layer, "gain"):
        from bnn_keras.quantizers import standardize_kernel

        return standardize_kernel(tf.constant(latent), layer.eps).numpy()
    return latent


def _latent_kernel(layer) -> np.ndarray:
    return np.asarray(latent_variable(layer.kernel).numpy())


def checkpoint_paths(run_dir: Path) -> list[str]:
    """Checkpoint prefixes of a run, oldest first (a kept first-epoch checkpoint included)."""
    found: dict[str, float] = {}
    for index in list((run_dir / "checkpoints").rglob("*.index")):
        prefix = str(index)[: -len(".index")]
        found[prefix] = index.stat().st_mtime
    return sorted(found, key=lambda p: (found[p], p))


def restore_copy(model: keras.Model, prefix: str) -> keras.Model:
    """A copy of ``model``'s architecture with the net weights of a training checkpoint."""
    copy = keras.models.clone_model(model)
    # read(), not restore(): the permanent first-epoch checkpoint is written with write(),
    # which has no save_counter, and restore() would count that as a mismatch
    status = tf.train.Checkpoint(net=copy).read(prefix).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as err:
        raise BnnError(f"checkpoint {prefix} does not match the model: "
                       f"{first_line(err)}") from None
    return copy


def layer_stats(model: keras.Model, first: keras.Model | None = None) -> list[LayerStats]:
    """Statistics of every binary conv; sign flips against ``first`` when given."""
    rows = []
    first_layers = {lay.name: lay for lay in first.layers} if first is not None else {}
    for layer in binary_conv_layers(model):
        latent = _latent_kernel(layer)
        view = binarizing_view(layer, latent)
        std = float(view.std()) or 1.0
        flip = None
        if layer.name in first_layers:
            old = binarizing_view(layer, _latent_kernel(first_layers[layer.name]))
            flip = float(np.mean(np.sign(old + 0.0) != np.sign(view + 0.0)))
        gain = layer.gain.numpy() if hasattr(layer, "gain") else None
        rows.append(LayerStats(
            layer=layer.name, weights=int(latent.size), latent_std=float(latent.std()),
            near_zero_share=float(np.mean(np.abs(view) < NEAR_ZERO * std)),
            sign_flip_ratio=flip,
            gain_mean=None if gain is None else float(gain.mean()),
            gain_min=None if gain is None else float(gain.min()),
            gain_max=None if gain is None else float(gain.max()),
        ))
    return rows


def block_activation_std(model: keras.Model, images: np.ndarray) -> list[tuple[str, float]]:
    """Standard deviation of each residual add's output (the residual stream) on a batch."""
    adds = [lay for lay in model.layers if isinstance(lay, keras.layers.Add)]
    if not adds:
        return []
    probe = keras.Model(model.inputs, [lay.output for lay in adds])
    outputs = probe(images, training=False)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return [(lay.name, float(np.std(o))) for lay, o in zip(adds, outputs)]


def inspection_csv(rows: list[LayerStats], stds: list[tuple[str, float]]) -> bytes:
    """``inspect.csv``: one row per binary layer, then one per residual block."""
    text = io.StringIO(newline="")
    fields = ["kind", *LayerStats.__dataclass_fields__, "activation_std"]
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        writer.writerow({"kind": "binary_layer", **asdict(row)})
    for name, std in stds:
        writer.writerow({"kind": "block", "layer": name, "activation_std": std})
    return text.getvalue().encode()


def write_inspection(model: keras.Model, rows: list[LayerStats],
                     stds: list[tuple[str, float]], out_dir: Path, title: str,
                     ) -> tuple[Path, Path]:
    """``inspect.csv`` and ``inspect.png`` in ``out_dir``, written as one set (both or
    neither: a full disk leaves the previous pair whole); returns their paths."""
    out_dir = Path(out_dir)
    csv_path, png_path = out_dir / "inspect.csv", out_dir / "inspect.png"
    atomic_write_files({csv_path: inspection_csv(rows, stds),
                        png_path: plot_inspection(model, rows, stds, title)})
    return csv_path, png_path


def plot_inspection(model: keras.Model, rows: list[LayerStats],
                    stds: list[tuple[str, float]], title: str) -> bytes:
    """A PNG (its bytes) of a grid: latent histograms per binary layer, then flips /
    near-zero, gains and activation std per block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = binary_conv_layers(model)
    n_hist = len(layers)
    cols = 4
    n_panels = n_hist + 3
    nrows = int(np.ceil(n_panels / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(cols * 3.2, nrows * 2.6), dpi=90)
    axes = np.atleast_1d(axes).ravel()
    for ax, layer in zip(axes, layers):
        view = binarizing_view(layer, _latent_kernel(layer)).ravel()
        ax.hist(view, bins=60, color="tab:blue")
        ax.set_title(layer.name, fontsize=7)
        ax.tick_params(labelsize=6)
    ax = axes[n_hist]
    idx = np.arange(len(rows))
    ax.bar(idx - 0.2, [r.near_zero_share for r in rows], 0.4, label="near zero")
    ax.bar(idx + 0.2, [r.sign_flip_ratio or 0.0 for r in rows], 0.4, label="sign flips")
    ax.set_title("share near zero / flipped", fontsize=8)
    ax.legend(fontsize=6)
    ax = axes[n_hist + 1]
    gains = [r for r in rows if r.gain_mean is not None]
    if gains:
        ax.errorbar(range(len(gains)), [r.gain_mean for r in gains],
                    yerr=[[r.gain_mean - r.gain_min for r in gains],
                          [r.gain_max - r.gain_mean for r in gains]], fmt="o", ms=3)
    ax.set_title("WS gain (mean, min-max)" if gains else "no WS gains", fontsize=8)
    ax = axes[n_hist + 2]
    ax.plot([s for _, s in stds], "o-", ms=3)
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.set_title("activation std after each block", fontsize=8)
    for ax in axes[n_panels:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    png = figure_png(fig)
    plt.close(fig)
    return png
