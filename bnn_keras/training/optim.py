r"""The papers' optimiser and weight decay (their schedules are in
:mod:`bnn_keras.training.schedules`).

* ReActNet, BN-free BNN, Bi-Real Net (PyTorch code): Adam, L2
  (``torch.optim.Adam(weight_decay=...)``, added to the gradient) on the 4-D tensors only.
* BNext: AdamW, decoupled weight decay 1e-8 on the 4-D tensors and 1e-3 on everything
  else, gradients clipped to a global norm of 5.

The optimiser is PyTorch's Adam (:class:`TorchAdam`);
the weight decays and gradient clipping are applied by
:class:`~bnn_keras.training.TrainingModel` (see :class:`WeightDecay`), so the two decay
groups can differ and checkpoints stay plain ``Adam`` state.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf
import tf_keras as keras

from bnn_keras.training.config import TrainConfig
from bnn_keras.training.schedules import (  # noqa: F401 (importable from here too)
    EpochSchedule,
    WarmupCosine,
    WarmupLinear,
    build_schedule,
)
from bnn_keras.variables import latent_variable


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
    ``Adam`` puts \(\epsilon\) inside (or scales it with ``adaptive_epsilon``), a step
    different enough for a binary net to part from the official one within a few steps
    (``tests/test_official_steps.py``).

    ``learning_rate_schedule`` is the schedule it was built with (``None`` for a constant
    rate), for :func:`current_learning_rate`.

    Example:
        ```python
        optimizer = TorchAdam(5e-4)
        ```
    """

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, name: str = "TorchAdam", **kwargs):
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         name=name, **kwargs)
        schedule = keras.optimizers.schedules.LearningRateSchedule
        self.learning_rate_schedule = (learning_rate if isinstance(learning_rate, schedule)
                                       else None)

    def update_step(self, gradient, variable):
        dtype = variable.dtype
        index = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[index], self._velocities[index]
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = (tf.constant(b, dtype) for b in (self.beta_1, self.beta_2))
        beta_2_power = tf.pow(beta_2, step)
        # TensorFlow's fused ApplyAdam, one pass over m, v and w instead of one per op: it
        # steps w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps'), PyTorch's step
        # when eps' = eps sqrt(1 - b2^t); its m update is PyTorch's lerp
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(m), v=_handle(v),
            beta1_power=tf.pow(beta_1, step), beta2_power=beta_2_power,
            lr=tf.cast(self.learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.constant(self.epsilon, dtype) * tf.sqrt(1.0 - beta_2_power),
            grad=tf.convert_to_tensor(gradient))


def _handle(variable) -> tf.Tensor:
    """The resource handle of the variable that stores ``variable`` (through larq's and
    mixed precision's wrappers)."""
    variable = latent_variable(variable)
    return getattr(variable, "_variable", variable).handle


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
        self._kernels = {latent_variable(v).ref() for v in torch_4d_weights(net)}
        return self

    @property
    def active(self) -> bool:
        return self.kernel > 0 or self.other > 0

    def rate(self, variable: tf.Variable) -> float:
        if self._kernels is None:
            in_group = variable.shape.rank == 4
        else:
            in_group = latent_variable(variable).ref() in self._kernels
        return self.kernel if in_group else self.other

    def add_l2(self, grads: list, variables: list) -> list:
        """Coupled L2: the gradients with ``lambda * w`` added (no-op if decoupled)."""
        if self.decoupled or not self.active:
            return grads
        out = []
        for g, v in zip(grads, variables):
            rate = self.rate(v)
            out.append(g + rate * tf.convert_to_tensor(latent_variable(v)) if g is not None and rate
                       else g)
        return out

    def decay(self, variables: list, learning_rate: tf.Tensor) -> None:
        """Decoupled decay: ``w -= lr * lambda * w`` (no-op if coupled)."""
        if not self.decoupled or not self.active:
            return
        for v in variables:
            rate = self.rate(v)
            if rate:
                latent = latent_variable(v)
                latent.assign_sub(tf.cast(learning_rate * rate, latent.dtype) * latent)


def weight_decay_from_config(config: TrainConfig) -> WeightDecay:
    """The :class:`WeightDecay` of a config."""
    return WeightDecay(kernel=config.kernel_weight_decay, other=config.weight_decay,
                       decoupled=config.optimizer == "adamw")


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> tf.Tensor:
    """The learning rate of the step the optimizer takes next.

    Under a schedule, tf_keras's ``optimizer.learning_rate`` holds the rate of the step
    before until ``apply_gradients`` updates it, so the schedule of a :class:`TorchAdam`
    (:func:`build_optimizer`) is evaluated at ``optimizer.iterations``. Another
    optimizer's ``learning_rate`` is used as it is: exact for a constant rate (and for
    legacy optimizers, whose ``learning_rate`` is the schedule itself), one step behind
    for a scheduled tf_keras optimizer.
    """
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # under loss scaling
    lr = getattr(optimizer, "learning_rate_schedule", None) or optimizer.learning_rate
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        return lr(optimizer.iterations)
    return tf.convert_to_tensor(lr)
