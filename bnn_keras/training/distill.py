r"""Knowledge distillation: ReActNet's distributional loss and BNext's consecutive KD.

Distributional loss (ReActNet, BN-free BNN): the student matches the teacher's softmax,
with no label term,

\[
\mathcal{L} = -\frac{1}{N} \sum_{n} \sum_{c} p^T_{nc} \log p^S_{nc}, \quad
p^T = \mathrm{softmax}(z^T), \; p^S = \mathrm{softmax}(z^S).
\]

Consecutive KD (BNext): at every step a set of \(K\) active teachers (an "assistant" that
is switched at given epochs, plus the main teacher). With \(\mathcal{L}_k(n)\) the
per-sample loss against teacher \(k\), each sample weighs the teachers by the softmax of
those losses (gradient stopped), so the teacher the student agrees with least counts most:

\[
\alpha_{nk} = \mathrm{softmax}_k\big(\mathcal{L}_k(n)\big), \quad
\mathcal{L} = \frac{1}{N} \sum_n \frac{1}{K} \sum_k \alpha_{nk}\, \mathcal{L}_k(n).
\]

The \(1/K\) is in BNext's code. What its script computes (``weighting="batch_softmax_ce"``,
the default) reduces each teacher's loss over the batch before weighting, a consequence of
comparing ``--hard_knowledge_grains`` with "instance" in one place and "Instance" in the
other (``src/train_assistant_group_amp.py`` lines 764 and 768):

\[
\mathcal{L} = \frac{1}{K} \sum_k \Big(\frac{1}{N} \sum_n \alpha_{nk}\Big)
\Big(\frac{1}{N} \sum_n \mathcal{L}_k(n)\Big);
\]

``"softmax_ce"`` weighs each sample's own losses (the formula above, what the paper
describes), ``"uniform"`` uses \(\alpha = 1/K\).

Teachers are Keras models that map the student's (normalised) inputs to logits; see
:func:`load_teacher` for the accepted specs.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tf_keras as keras

from bnn_keras.errors import BnnError, first_line


def loss_dtype(logits: tf.Tensor) -> tf.DType:
    """What a loss is computed in: float32 for 16-bit logits (mixed precision), else the
    logits' own type (float64 nets keep it)."""
    return tf.float32 if logits.dtype in (tf.float16, tf.bfloat16) else logits.dtype


def for_loss(logits: tf.Tensor) -> tf.Tensor:
    """``logits`` in :func:`loss_dtype`: mixed precision's 16-bit logits as float32."""
    return tf.cast(logits, loss_dtype(logits))


def soft_cross_entropy(student_logits: tf.Tensor, teacher_logits: tf.Tensor) -> tf.Tensor:
    """Per-sample ``-sum_c softmax(teacher) * log_softmax(student)``; teacher stopped."""
    dtype = loss_dtype(student_logits)
    target = tf.stop_gradient(tf.nn.softmax(tf.cast(teacher_logits, dtype), axis=-1))
    log_p = tf.nn.log_softmax(tf.cast(student_logits, dtype), axis=-1)
    return -tf.reduce_sum(target * log_p, axis=-1)


def distribution_loss(student_logits: tf.Tensor, teacher_logits: tf.Tensor) -> tf.Tensor:
    r"""ReActNet's distributional loss, the batch mean of :func:`soft_cross_entropy`.

    Example:
        ```python
        loss = distribution_loss(student(x, training=True), teacher(x, training=False))
        ```
    """
    return tf.reduce_mean(soft_cross_entropy(student_logits, teacher_logits))


def teacher_weights(per_teacher_losses: tf.Tensor, weighting: str = "softmax_ce") -> tf.Tensor:
    """``(N, K)`` weights over ``K`` teachers from their per-sample losses ``(N, K)``."""
    losses = tf.stop_gradient(per_teacher_losses)
    if weighting == "uniform":
        return tf.ones_like(losses) / tf.cast(tf.shape(losses)[-1], losses.dtype)
    if weighting not in ("softmax_ce", "batch_softmax_ce"):
        raise ValueError(f"unknown teacher weighting {weighting!r}")
    return tf.nn.softmax(losses, axis=-1)


def multi_teacher_loss(student_logits: tf.Tensor, teacher_logits: Sequence[tf.Tensor],
                       weighting: str = "batch_softmax_ce") -> tuple[tf.Tensor, tf.Tensor]:
    r"""BNext's loss over several teachers: ``(loss, alpha)`` (see the module docstring).

    With one teacher it equals :func:`distribution_loss`.
    """
    losses = tf.stack([soft_cross_entropy(student_logits, t) for t in teacher_logits], axis=-1)
    alpha = teacher_weights(losses, weighting)
    k = float(len(teacher_logits))
    if weighting == "batch_softmax_ce":
        losses = tf.reduce_mean(losses, axis=0, keepdims=True)
    return tf.reduce_mean(tf.reduce_sum(alpha * losses, axis=-1) / k), alpha


def active_assistant(epoch: int, num_assistants: int, epochs: int,
                     switch_epochs: Sequence[int] = ()) -> int:
    """Index of the assistant teacher active in (0-based) ``epoch``.

    ``switch_epochs[i]`` is the first epoch of assistant ``i`` (the first is 0). Without
    them the run is split evenly, as in BNext: assistant ``i`` for epochs
    ``[i * E / A, (i + 1) * E / A)``.
    """
    if num_assistants <= 0:
        return -1
    if switch_epochs:
        index = 0
        for i, start in enumerate(switch_epochs):
            if epoch >= start:
                index = i
        return index
    return min(int(epoch * num_assistants / max(epochs, 1)), num_assistants - 1)


class TeacherSwitch(keras.callbacks.Callback):
    """Sets the active assistant at the start of each epoch (BNext's consecutive KD)."""

    def __init__(self, variable: tf.Variable, num_assistants: int, epochs: int,
                 switch_epochs: Sequence[int] = ()):
        super().__init__()
        self.variable = variable
        self.num_assistants = num_assistants
        self.epochs = epochs
        self.switch_epochs = list(switch_epochs)

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(active_assistant(epoch, self.num_assistants, self.epochs,
                                              self.switch_epochs))


def _with_input_adapter(model: keras.Model, input_shape, mean, std, preprocess) -> keras.Model:
    """Wrap a teacher that wants raw pixels: undo our normalisation, resize, preprocess."""
    inputs = keras.Input(tuple(input_shape), name="student_image")
    x = inputs
    if mean and std:
        x = keras.layers.Lambda(lambda t: (t * tf.constant(std) + tf.constant(mean)) * 255.0,
                                name="to_pixels")(x)
    want = model.input_shape[1:3]
    if all(want) and tuple(want) != tuple(input_shape[:2]):
        x = keras.layers.Resizing(*want, name="to_teacher_size")(x)
    if preprocess is not None:
        x = keras.layers.Lambda(preprocess, name="teacher_preprocess")(x)
    return keras.Model(inputs, model(x, training=False), name=f"teacher_{model.name}")


#: Teacher specs that name a pretrained network rather than a model file.
PRETRAINED_PREFIXES = ("keras:", "larq_zoo:")


def is_model_file_spec(spec: str) -> bool:
    """Whether the teacher ``spec`` names a ``.keras`` file or a run folder."""
    return not spec.startswith(PRETRAINED_PREFIXES)


def pretrained_builder(spec: str):
    """The function building the pretrained teacher ``keras:NAME`` or ``larq_zoo:NAME``;
    a one-line :class:`BnnError` unless NAME is a public model builder there (not a
    module, not ``__name__`` or any other attribute)."""
    import inspect

    prefix, _, name = spec.partition(":")
    if prefix == "keras":
        namespaces, where = [keras.applications], f"tf.keras.applications.{name}"
    else:
        import larq_zoo as lqz

        namespaces, where = [lqz.sota, lqz.literature], "larq_zoo.sota or larq_zoo.literature"
    if name.isidentifier() and not name.startswith("_"):
        for namespace in namespaces:
            builder = getattr(namespace, name, None)
            if inspect.isfunction(builder) or inspect.isclass(builder):
                return builder
    raise BnnError(f"unknown teacher {spec!r}: no model builder {where}")


def load_teacher(spec: str, *, num_classes: int, input_shape: Sequence[int],
                 mean: Sequence[float] = (), std: Sequence[float] = ()) -> keras.Model:
    """A frozen teacher that maps the student's inputs to ``num_classes`` logits.

    ``spec`` is one of:

    * a ``.keras`` file, or a run folder holding ``model.keras`` (any Keras model that takes
      the student's inputs; e.g. a float network trained with ``bnn-keras train``);
    * ``keras:NAME`` - ``tf.keras.applications.NAME(weights="imagenet")``, fed raw pixels
      (our normalisation undone with the dataset's ``mean``/``std``) through the
      application's ``preprocess_input``;
    * ``larq_zoo:NAME`` - a larq-zoo model with ImageNet weights (``larq_zoo.sota.NAME``
      or ``larq_zoo.literature.NAME``), fed raw pixels through larq-zoo's preprocessing.

    Applications and larq-zoo models output probabilities; their logits are recovered
    with a log (softmax is shift-invariant, so the distributional loss is unchanged).

    Raises:
        BnnError: unknown spec, unreadable file, or a class count that does not match.
    """
    from bnn_keras.keras_files import load_keras_model
    from bnn_keras.training.run_folder import model_file

    probabilities = spec.startswith(("keras:", "larq_zoo:"))
    if probabilities:
        builder = pretrained_builder(spec)
        if spec.startswith("keras:"):
            preprocess = getattr(_applications_module(builder), "preprocess_input", None)
        else:
            import larq_zoo as lqz

            preprocess = lqz.preprocess_input
        try:
            model = builder(weights="imagenet")
        except Exception as err:  # noqa: BLE001
            raise BnnError(f"cannot load teacher {spec}: {first_line(err)}") from None
        model = _with_input_adapter(model, input_shape, mean, std, preprocess)
    else:
        model = load_keras_model(model_file(spec))
    outputs = int(model.output_shape[-1])
    if outputs != num_classes:
        raise BnnError(f"teacher {spec} predicts {outputs} classes but the dataset has "
                       f"{num_classes}")
    if probabilities:
        inputs = keras.Input(tuple(input_shape))
        logits = keras.layers.Lambda(lambda p: tf.math.log(tf.maximum(p, 1e-12)),
                                     name="to_logits")(model(inputs))
        model = keras.Model(inputs, logits, name=model.name)
    model.trainable = False
    return model


def _applications_module(builder):
    import importlib

    module = importlib.import_module(builder.__module__)
    return module
