"""Adaptive gradient clipping (Brock et al. 2021, "High-Performance Large-Scale Image
Recognition Without Normalization"), unit-wise in Keras layouts."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def unitwise_norm(x: tf.Tensor) -> tf.Tensor:
    """L2 norm per unit, broadcastable against ``x``.

    A unit is an output channel for conv kernels ``(kh, kw, in, out)`` (norm over
    ``kh, kw, in``), an output column for dense kernels ``(in, out)``; vectors and scalars
    are one unit.
    """
    x = tf.convert_to_tensor(x)
    if x.shape.rank is None or x.shape.rank <= 1:
        return tf.norm(x)
    axes = list(range(x.shape.rank - 1))
    return tf.sqrt(tf.reduce_sum(tf.square(x), axis=axes, keepdims=True))


def adaptive_clip(
    grads: Sequence[tf.Tensor | None],
    variables: Sequence[tf.Variable],
    clip_factor: float,
    eps: float = 1e-3,
    elementwise: Sequence[bool] = (),
) -> list[tf.Tensor | None]:
    r"""Clip each unit's gradient relative to the unit's weight norm.

    \[
    g \leftarrow \begin{cases} g \cdot \frac{m}{\lVert g \rVert} & \lVert g \rVert > m \\
    g & \text{otherwise} \end{cases}, \quad m = \lambda \max(\lVert W \rVert, \epsilon)
    \]

    with \(\lambda\) = ``clip_factor``; norms from :func:`unitwise_norm`, or per element for
    the variables flagged in ``elementwise`` (a WS gain is ``(out, 1, 1, 1)`` in PyTorch,
    one unit per output channel). ``clip_factor`` 0 returns the gradients unchanged.
    ``None`` gradients pass through.

    Example:
        ```python
        grads = tape.gradient(loss, model.trainable_variables)
        grads = adaptive_clip(grads, model.trainable_variables, clip_factor=0.02)
        ```
    """
    if clip_factor <= 0:
        return list(grads)
    flags = list(elementwise) or [False] * len(variables)
    clipped = []
    for grad, var, per_element in zip(grads, variables, flags):
        if grad is None:
            clipped.append(None)
            continue
        norm = tf.abs if per_element else unitwise_norm
        max_norm = clip_factor * tf.maximum(norm(tf.convert_to_tensor(var)), eps)
        grad_norm = norm(grad)
        scaled = grad * (max_norm / tf.maximum(grad_norm, 1e-6))
        clipped.append(tf.where(grad_norm > max_norm, scaled, grad))
    return clipped
