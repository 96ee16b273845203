r"""Learning-rate schedules: per step (warm-up then cosine or linear decay) and the
official scripts' per-epoch ones.

* ReActNet, BN-free BNN, Bi-Real Net: linear decay to zero once per epoch
  (:class:`EpochSchedule` ``linear``, the ``linear_by_epoch`` schedule).
* BNext: 5 epochs of linear warm-up from 1e-5, then cosine towards 1e-7, once per epoch
  (:class:`EpochSchedule` ``cosine``, ``cosine_by_epoch``).

:func:`build_schedule` picks the schedule of a :class:`~bnn_keras.training.TrainConfig`.
"""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras

from bnn_keras.training.config import TrainConfig


@keras.utils.register_keras_serializable(package="bnn_keras")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    r"""Linear warm-up, then cosine decay.

    tf_keras's ``CosineDecay(warmup_start, total_steps - warmup_steps, minimum / peak,
    warmup_target=peak, warmup_steps=warmup_steps)`` has the same formula but orders the
    float32 operations differently, so its rates differ from these in the last bits.

    \[
    \eta(t) = \begin{cases}
    \eta_w + (\eta_0 - \eta_w)\, t / T_w & t < T_w \\
    \eta_{min} + \tfrac12 (\eta_0 - \eta_{min})\,(1 + \cos(\pi \tfrac{t - T_w}{T - T_w}))
    & T_w \le t < T \\
    \eta_{min} & t \ge T \end{cases}
    \]

    with \(\eta_0\) = ``peak``, \(\eta_w\) = ``warmup_start``, \(T_w\) = ``warmup_steps``
    and \(T\) = ``total_steps`` (BNext: timm's ``CosineLRScheduler`` with
    ``warmup_prefix=True``).

    Example:
        ```python
        lr = WarmupCosine(1e-3, total_steps=512 * 2500, warmup_steps=5 * 2500,
                          warmup_start=1e-5, minimum=1e-7)
        optimizer = keras.optimizers.Adam(lr)
        ```
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int = 0,
                 warmup_start: float = 0.0, minimum: float = 0.0):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.warmup_start = float(warmup_start)
        self.minimum = float(minimum)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = float(max(self.warmup_steps, 1))
        warmup = self.warmup_start + (self.peak - self.warmup_start) * step / warm
        span = float(max(self.total_steps - self.warmup_steps, 1))
        progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
        return tf.where(step < self.warmup_steps, warmup, self.decay(progress))

    def decay(self, progress: tf.Tensor) -> tf.Tensor:
        """The rate after the warm-up, at ``progress`` in [0, 1] of the decay."""
        return self.minimum + 0.5 * (self.peak - self.minimum) * (
            1.0 + tf.cos(math.pi * progress))

    def get_config(self) -> dict:
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "warmup_start": self.warmup_start,
                "minimum": self.minimum}


@keras.utils.register_keras_serializable(package="bnn_keras")
class WarmupLinear(WarmupCosine):
    r"""Linear warm-up (as :class:`WarmupCosine`), then linear decay to ``minimum``:
    \( \eta_{min} + (\eta_0 - \eta_{min})(1 - \tfrac{t - T_w}{T - T_w}) \).

    Example:
        ```python
        lr = WarmupLinear(2e-3, total_steps=6 * 23, warmup_steps=23, minimum=1e-6)
        ```
    """

    def decay(self, progress: tf.Tensor) -> tf.Tensor:
        return self.minimum + (self.peak - self.minimum) * (1.0 - progress)


@keras.utils.register_keras_serializable(package="bnn_keras")
class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    r"""The official scripts' schedules: one learning rate per epoch, set before it.

    With \(e\) the 0-based epoch of the step, \(E\) the epochs, \(W\) the warm-up epochs:

    ``linear`` (``LambdaLR(lambda e: 1 - e / E)`` stepped at the start of every epoch, so
    epoch \(e\) trains at its value for \(e + 1\)):
    \( \eta_e = \eta_0 (1 - (e + 1) / E) \).

    ``cosine`` (timm's ``CosineLRScheduler(t_initial=E, warmup_t=W, warmup_prefix=True)``
    stepped with the epoch): \( \eta_e = \eta_w + e (\eta_0 - \eta_w) / W \) for
    \(e < W\), then
    \( \eta_e = \eta_{min} + \tfrac12 (\eta_0 - \eta_{min})
    (1 + \cos(\pi (e - W) / E)) \).

    Example:
        ```python
        lr = EpochSchedule("linear", 5e-4, epochs=256, steps_per_epoch=5005)
        ```
    """

    def __init__(self, kind: str, peak: float, epochs: int, steps_per_epoch: int,
                 warmup_epochs: int = 0, warmup_start: float = 0.0, minimum: float = 0.0):
        if kind not in ("linear", "cosine"):
            raise ValueError(f"kind must be 'linear' or 'cosine', got {kind!r}")
        self.kind = kind
        self.peak = float(peak)
        self.epochs = int(epochs)
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.warmup_epochs = int(warmup_epochs)
        self.warmup_start = float(warmup_start)
        self.minimum = float(minimum)

    def at_epoch(self, epoch):
        """The learning rate of (0-based) ``epoch``, computed in float64: near the cosine's
        end ``1 + cos`` cancels, too much for float32 to match the official rates."""
        e = tf.cast(epoch, tf.float64)
        if self.kind == "linear":
            rate = self.peak * (1.0 - (e + 1.0) / self.epochs)
        else:
            warm = float(max(self.warmup_epochs, 1))
            warmup = self.warmup_start + e * (self.peak - self.warmup_start) / warm
            cosine = self.minimum + 0.5 * (self.peak - self.minimum) * (
                1.0 + tf.cos(math.pi * (e - self.warmup_epochs) / self.epochs))
            rate = tf.where(e < self.warmup_epochs, warmup, cosine)
        return tf.cast(rate, keras.backend.floatx())

    def __call__(self, step):
        return self.at_epoch(tf.math.floordiv(tf.cast(step, tf.int64), self.steps_per_epoch))

    def get_config(self) -> dict:
        return {"kind": self.kind, "peak": self.peak, "epochs": self.epochs,
                "steps_per_epoch": self.steps_per_epoch, "warmup_epochs": self.warmup_epochs,
                "warmup_start": self.warmup_start, "minimum": self.minimum}


def build_schedule(config: TrainConfig, steps_per_epoch: int):
    """The learning-rate schedule of ``config`` over ``epochs * steps_per_epoch`` steps."""
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "constant":
        return config.learning_rate
    if config.schedule.endswith("_by_epoch"):
        return EpochSchedule(config.schedule.split("_")[0], config.learning_rate,
                             config.epochs, steps_per_epoch, config.warmup_epochs,
                             config.warmup_lr, config.min_lr)
    if config.schedule == "cosine" or config.warmup_epochs:
        kind = WarmupLinear if config.schedule == "linear" else WarmupCosine
        return kind(config.learning_rate, total, config.warmup_epochs * steps_per_epoch,
                    config.warmup_lr, config.min_lr)
    return keras.optimizers.schedules.PolynomialDecay(
        config.learning_rate, decay_steps=total, end_learning_rate=config.min_lr, power=1.0)
