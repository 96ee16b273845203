"""2-D loss landscapes around trained weights (Li et al. 2018, as used by BNext).

Two random Gaussian directions, filter-normalised: each output filter of a direction is
scaled to the norm of the same filter of the weights. The loss is evaluated on a grid
``w + a * d1 + b * d2`` over a fixed data subset, with the binary layers evaluated as
deployed: the perturbed *latent* weights go through the layers' quantizers.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.files import atomic_write_bytes, atomic_write_files, figure_png
from bnn_keras.variables import latent_variable

#: The files :func:`write_landscapes` writes into each run's ``landscape/`` folder.
LANDSCAPE_FILES = ("landscape.npz", "landscape_contour.png", "landscape_surface.png")


def filter_normalized_direction(weights: list[np.ndarray], rng: np.random.Generator,
                                ignore_vectors: bool = True) -> list[np.ndarray]:
    r"""A random Gaussian direction with each output filter rescaled to the weights'.

    \[
    d_{f} \leftarrow \frac{d_{f}}{\lVert d_{f} \rVert} \lVert w_{f} \rVert
    \]

    for every output filter ``f`` (the last axis of a Keras kernel). Vectors and scalars
    (biases, gains, BN parameters, RPReLU slopes) get a zero direction when
    ``ignore_vectors`` (Li et al.'s convention), otherwise they are one filter.
    """
    directions = []
    for w in weights:
        d = rng.standard_normal(w.shape).astype(np.float32)
        if w.ndim <= 1:
            if ignore_vectors:
                directions.append(np.zeros_like(w, dtype=np.float32))
                continue
            d *= np.linalg.norm(w) / (np.linalg.norm(d) + 1e-10)
        else:
            axes = tuple(range(w.ndim - 1))
            w_norm = np.sqrt((w.astype(np.float64) ** 2).sum(axes, keepdims=True))
            d_norm = np.sqrt((d.astype(np.float64) ** 2).sum(axes, keepdims=True))
            d = (d * (w_norm / (d_norm + 1e-10))).astype(np.float32)
        directions.append(d)
    return directions


@dataclass
class Landscape:
    """A loss grid: ``loss[i, j]`` at ``w + alphas[i] * d1 + betas[j] * d2``."""

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    seconds: float

    def npz_bytes(self) -> bytes:
        """The grid as an ``.npz`` archive (what :meth:`save` writes)."""
        buffer = io.BytesIO()
        np.savez(buffer, alphas=self.alphas, betas=self.betas, loss=self.loss,
                 accuracy=self.accuracy, seconds=self.seconds)
        return buffer.getvalue()

    def save(self, path) -> None:
        """Write the grid to ``path`` (``.npz``), atomically."""
        atomic_write_bytes(path, self.npz_bytes())


def loss_landscape(model: keras.Model, images: np.ndarray, labels: np.ndarray, *,
                   points: int = 21, span: float = 1.0, seed: int = 0,
                   batch_size: int = 256, progress=None) -> Landscape:
    """Evaluate the loss on a ``points x points`` grid over ``[-span, span]^2``.

    The grid always contains the origin (``points`` is made odd), where the loss equals
    the trained model's loss on the same data. The model's weights are restored after.
    ``progress(done, total)`` is called after each grid point.

    Example:
        ```python
        grid = loss_landscape(model, x[:512], y[:512], points=21)
        grid.loss[10, 10]   # the trained model's loss
        ```
    """
    points = points + 1 - points % 2
    variables = [latent_variable(v) for v in model.trainable_variables]
    origin = [v.numpy() for v in variables]
    rng = np.random.default_rng(seed)
    d1 = filter_normalized_direction(origin, rng)
    d2 = filter_normalized_direction(origin, rng)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size).cache()

    w0 = [tf.constant(w) for w in origin]
    t1 = [tf.constant(d) for d in d1]
    t2 = [tf.constant(d) for d in d2]

    @tf.function
    def set_weights(a, b):
        for v, w, x, y in zip(variables, w0, t1, t2):
            v.assign(w + a * x + b * y)

    @tf.function
    def batch_loss(x, y):
        logits = model(x, training=False)
        hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                                              tf.cast(y, tf.int32)), tf.float32))
        return loss_fn(y, logits), hits

    alphas = np.linspace(-span, span, points).astype(np.float32)
    betas = alphas.copy()
    loss = np.zeros((points, points), np.float64)
    acc = np.zeros_like(loss)
    start = time.time()
    try:
        for i, a in enumerate(alphas):
            for j, b in enumerate(betas):
                set_weights(tf.constant(a), tf.constant(b))
                total, hits = 0.0, 0.0
                for x, y in data:
                    batch_total, batch_hits = batch_loss(x, y)
                    total += float(batch_total)
                    hits += float(batch_hits)
                loss[i, j] = total / len(labels)
                acc[i, j] = hits / len(labels)
                if progress:
                    progress(i * points + j + 1, points * points)
    finally:
        for v, w in zip(variables, origin):
            v.assign(w)
    return Landscape(alphas, betas, loss, acc, time.time() - start)


def plot_landscapes(grids: dict[str, Landscape], out_dirs: dict[str, str]) -> list[str]:
    """Contour and 3-D surface PNGs per run, on shared axes and a shared colour scale,
    written atomically (all or none)."""
    files = {Path(out_dirs[name]) / f"landscape_{kind}.png": png
             for name, pngs in landscape_pngs(grids).items() for kind, png in pngs.items()}
    return [str(p) for p in atomic_write_files(files)]


def write_landscapes(grids: dict[str, Landscape], out_dirs: dict[str, str | Path],
                     ) -> list[Path]:
    """Each run's grid (``landscape.npz``) and its two plots, all runs' files as one set:
    every file is written before any replaces its old version, so a failure (a full disk)
    leaves the previous grids and plots whole and matching. Returns the paths written."""
    files = {}
    for name, pngs in landscape_pngs(grids).items():
        folder = Path(out_dirs[name])
        files[folder / LANDSCAPE_FILES[0]] = grids[name].npz_bytes()
        files.update({folder / f"landscape_{kind}.png": png for kind, png in pngs.items()})
    return atomic_write_files(files)


def _loss_range(grids: dict[str, Landscape]) -> tuple[float, float]:
    """The shared colour scale: the smallest and largest finite loss of every grid."""
    finite = [g.loss[np.isfinite(g.loss)] for g in grids.values()]
    finite = [f for f in finite if f.size]
    if not finite:
        raise BnnError("every loss on the landscape grid is NaN or infinite: nothing to "
                       "plot (try a smaller --span)")
    return min(float(f.min()) for f in finite), max(float(f.max()) for f in finite)


def landscape_pngs(grids: dict[str, Landscape]) -> dict[str, dict[str, bytes]]:
    """Per run, its ``contour`` and ``surface`` plots as PNG bytes, on shared axes and a
    shared colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = _loss_range(grids)
    levels = np.linspace(lo, hi if hi > lo else lo + 1e-6, 30)
    pngs = {}
    for name, grid in grids.items():
        a, b = np.meshgrid(grid.alphas, grid.betas, indexing="ij")
        fig, ax = plt.subplots(figsize=(5, 4.2), dpi=100)
        cs = ax.contourf(a, b, grid.loss, levels=levels, cmap="viridis")
        ax.contour(a, b, grid.loss, levels=levels[::3], colors="white", linewidths=0.4)
        ax.plot([0], [0], "r*", markersize=9)
        fig.colorbar(cs, ax=ax, label="loss")
        ax.set(xlabel="direction 1", ylabel="direction 2", title=f"{name}: loss landscape")
        fig.tight_layout()
        contour = figure_png(fig)
        plt.close(fig)

        fig = plt.figure(figsize=(5.5, 4.5), dpi=100)
        ax3 = fig.add_subplot(projection="3d")
        ax3.plot_surface(a, b, grid.loss, cmap="viridis", vmin=lo, vmax=hi, linewidth=0)
        ax3.set(xlabel="direction 1", ylabel="direction 2", zlabel="loss", zlim=(lo, hi),
                title=f"{name}: loss surface")
        fig.tight_layout()
        pngs[name] = {"contour": contour, "surface": figure_png(fig)}
        plt.close(fig)
    return pngs
