r"""The papers' optimisers and learning-rate schedules.

* ReActNet, BN-free BNN, Bi-Real Net (PyTorch code): Adam, learning rate decaying linearly
  to zero once per epoch (``linear_by_epoch``), L2 (``torch.optim.Adam(weight_decay=...)``,
  added to the gradient) on the 4-D tensors only.
* BNext: AdamW, 5 epochs of linear warm-up from 1e-5 then cosine towards 1e-7, once per
  epoch (``cosine_by_epoch``), decoupled weight decay 1e-8 on the 4-D tensors and 1e-3 on
  everything else, gradients clipped to a global norm of 5.

The optimiser is PyTorch's Adam (:class:`TorchAdam`);
the weight decays and gradient clipping are applied by
:class:`~bnn_keras.training.TrainingModel` (see :class:`WeightDecay`), so the two decay
groups can differ and checkpoints stay plain ``Adam`` state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf
import tf_keras as keras

from bnn_keras.training.config import TrainConfig


@keras.utils.register_keras_serializable(package="bnn_keras")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    r"""Linear warm-up, then cosine decay.

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
        cosine = self.minimum + 0.5 * (self.peak - self.minimum) * (
            1.0 + tf.cos(math.pi * progress))
        return tf.where(step < self.warmup_steps, warmup, cosine)

    def get_config(self) -> dict:
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "warmup_start": self.warmup_start,
                "minimum": self.minimum}


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
        end ``1 + cos`` cancels, and in float32 the last epoch's rate was 3e-5 off."""
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
        minimum = config.min_lr
        if config.schedule == "linear":  # linear with warm-up: a cosine would be wrong
            return _WarmupLinear(config.learning_rate, total,
                                 config.warmup_epochs * steps_per_epoch, config.warmup_lr)
        return WarmupCosine(config.learning_rate, total, config.warmup_epochs * steps_per_epoch,
                            config.warmup_lr, minimum)
    return keras.optimizers.schedules.PolynomialDecay(
        config.learning_rate, decay_steps=total, end_learning_rate=config.min_lr, power=1.0)


@keras.utils.register_keras_serializable(package="bnn_keras")
class _WarmupLinear(WarmupCosine):
    """Linear warm-up, then linear decay to 0."""

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = float(max(self.warmup_steps, 1))
        warmup = self.warmup_start + (self.peak - self.warmup_start) * step / warm
        span = float(max(self.total_steps - self.warmup_steps, 1))
        progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
        return tf.where(step < self.warmup_steps, warmup, self.peak * (1.0 - progress))


@keras.utils.register_keras_serializable(package="bnn_keras")
class TorchAdam(keras.optimizers.Adam):
    r"""``torch.optim.Adam``'s update, step for step (the official scripts' optimizer).

    \[
    m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad
    v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \quad
    w \leftarrow w - \frac{\eta}{1 - \beta_1^t} \,
    \frac{m}{\sqrt{v} / \sqrt{1 - \beta_2^t} + \epsilon}
    \]

    with \(\epsilon = 10^{-8}\) outside the bias correction, as PyTorch places it. Keras's
    ``Adam`` puts \(\epsilon\) inside (or scales it with ``adaptive_epsilon``) and its
    step carries a relative error of about 6e-6 even in float64, enough for a binary net
    to part from the official one within three steps (``tests/test_official_steps.py``).

    Example:
        ```python
        optimizer = TorchAdam(5e-4)
        ```
    """

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, name: str = "TorchAdam", **kwargs):
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         name=name, **kwargs)

    def update_step(self, gradient, variable):
        dtype = variable.dtype
        index = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[index], self._velocities[index]
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = (tf.constant(b, dtype) for b in (self.beta_1, self.beta_2))
        m.assign(beta_1 * m + (1.0 - beta_1) * gradient)
        v.assign(beta_2 * v + (1.0 - beta_2) * tf.square(gradient))
        correction_1 = 1.0 - tf.pow(beta_1, step)
        correction_2 = 1.0 - tf.pow(beta_2, step)
        denominator = tf.sqrt(v) / tf.sqrt(correction_2) + tf.constant(self.epsilon, dtype)
        variable.assign_sub(tf.cast(self.learning_rate, dtype) / correction_1 * m
                            / denominator)


def build_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """:class:`TorchAdam` on :func:`build_schedule` (``adam`` and ``adamw`` alike; the
    decays live in :class:`WeightDecay`)."""
    return TorchAdam(build_schedule(config, steps_per_epoch))


def torch_4d_weights(net: keras.Model) -> list[tf.Variable]:
    """The variables that are 4-D tensors in the official PyTorch code, the group whose
    weight decay ReActNet, BNN_NoBN, Bi-Real Net and BNext set apart (``p.ndimension() ==
    4`` in their train scripts): conv kernels (BNext's SE ``Dense`` layers are 1x1 convs
    there), WS gains ``(out, 1, 1, 1)``, learnable biases and RPReLU's two shifts
    ``(1, C, 1, 1)``, BNext's recoupling scale ``(1, C, 1, 1)``."""
    from bnn_keras.layers import LearnableBias, RecouplingMix, RPReLU

    out = []
    for layer in net.layers:
        names = set()
        if isinstance(layer, keras.layers.Conv2D):
            names = {"kernel", "gain"}
        elif isinstance(layer, keras.layers.Dense) and layer.name.endswith(
                ("_se_reduce", "_se_expand")):
            names = {"kernel"}
        elif isinstance(layer, LearnableBias):
            names = {"bias"}
        elif isinstance(layer, RPReLU):
            names = {"bias_in", "bias_out"}
        elif isinstance(layer, RecouplingMix):
            names = {"mix"}
        out += [v for v in layer.trainable_weights
                if v.name.split(":")[0].split("/")[-1] in names]
    return out


@dataclass
class WeightDecay:
    r"""Weight decay in two groups: the official code's 4-D tensors and everything else.

    ``decoupled=False`` (Adam + L2): \(g \leftarrow g + \lambda w\) before the update.
    ``decoupled=True`` (AdamW): \(w \leftarrow w - \eta_t \lambda w\), then the update.
    \(\lambda\) is ``kernel`` for the :func:`torch_4d_weights` of the network given to
    :meth:`bind` (every 4-D variable before it is bound), ``other`` otherwise;
    \(\eta_t\) is the current learning rate.

    Example:
        ```python
        decay = WeightDecay(kernel=1e-8, other=1e-3, decoupled=True)   # BNext
        trainer = TrainingModel(net, weight_decay=decay)
        ```
    """

    kernel: float = 0.0
    other: float = 0.0
    decoupled: bool = False

    def __post_init__(self) -> None:
        self._kernels: set | None = None

    def bind(self, net: keras.Model) -> WeightDecay:
        """Take the ``kernel`` group from ``net`` (:func:`torch_4d_weights`)."""
        self._kernels = {_latent(v).ref() for v in torch_4d_weights(net)}
        return self

    @property
    def active(self) -> bool:
        return self.kernel > 0 or self.other > 0

    def rate(self, variable: tf.Variable) -> float:
        if self._kernels is None:
            in_group = variable.shape.rank == 4
        else:
            in_group = _latent(variable).ref() in self._kernels
        return self.kernel if in_group else self.other

    def add_l2(self, grads: list, variables: list) -> list:
        """Coupled L2: the gradients with ``lambda * w`` added (no-op if decoupled)."""
        if self.decoupled or not self.active:
            return grads
        out = []
        for g, v in zip(grads, variables):
            rate = self.rate(v)
            out.append(g + rate * tf.convert_to_tensor(_latent(v)) if g is not None and rate
                       else g)
        return out

    def decay(self, variables: list, learning_rate: tf.Tensor) -> None:
        """Decoupled decay: ``w -= lr * lambda * w`` (no-op if coupled)."""
        if not self.decoupled or not self.active:
            return
        for v in variables:
            rate = self.rate(v)
            if rate:
                latent = _latent(v)
                latent.assign_sub(tf.cast(learning_rate * rate, latent.dtype) * latent)


def _latent(variable):
    """larq's quantized variables wrap the latent (real-valued) variable."""
    return getattr(variable, "latent_variable", variable)


def weight_decay_from_config(config: TrainConfig) -> WeightDecay:
    """The :class:`WeightDecay` of a config."""
    return WeightDecay(kernel=config.kernel_weight_decay, other=config.weight_decay,
                       decoupled=config.optimizer == "adamw")


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> tf.Tensor:
    """The learning rate the optimizer uses at its current step."""
    lr = getattr(optimizer, "_learning_rate", None)
    if lr is None:
        lr = optimizer.learning_rate
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        return lr(optimizer.iterations)
    return tf.convert_to_tensor(lr)
