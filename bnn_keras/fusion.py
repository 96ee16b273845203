"""Element-wise chains compiled by XLA into one loop, for the training graph.

TensorFlow's CPU runtime runs each element-wise op as its own pass over the tensor
(Eigen kernels), so a chain like RPReLU's ``relu(x - g) + a * min(x - g, 0) + z`` reads
and writes an activation-sized tensor once per op. Around binary convolutions those
passes, not the convolutions, bound a training step on a CPU, and more so in bfloat16,
whose convolutions are faster. :func:`fused` compiles a chain with XLA
(``jit_compile``), which emits it as one loop; the graph around it keeps TensorFlow's
kernels (oneDNN convolutions, Eigen reductions, which XLA's CPU backend runs slower).

Only the training graph uses them: gradients, and forwards under ``training=True``. The
inference graph keeps plain ops, the patterns LCE's converter lowers. Each fused chain
gives the values of its unfused ops bit for bit, in float32 and bfloat16 alike
(``tests/test_fusion.py``): it only reorders memory traffic, never arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def fused(fn: Callable) -> Callable:
    """``fn`` (tensors in, tensors out, element-wise) compiled by XLA into one kernel."""
    return tf.function(fn, jit_compile=True, autograph=False, reduce_retracing=True)
