"""Element-wise chains compiled by XLA into one loop, for the training graph.

TensorFlow's CPU runtime runs each element-wise op as its own pass over the tensor
(Eigen kernels), so a chain like RPReLU's ``relu(x - g) + a * min(x - g, 0) + z`` reads
and writes an activation-sized tensor once per op. Around binary convolutions those
passes, not the convolutions, bound a training step on a CPU, and more so in bfloat16,
whose convolutions are faster. :func:`fused` compiles a chain with XLA
(``jit_compile``), which emits it as one loop; the graph around it keeps TensorFlow's
kernels (oneDNN convolutions, Eigen reductions, which XLA's CPU backend runs slower).

Only the training graph uses them: gradients, and forwards under ``training=True``. The
inference graph runs the same chain as plain ops, the patterns LCE's converter lowers.
A fused chain gives its unfused ops' values bit for bit, in float32 and bfloat16 alike
(``tests/test_fusion.py``): it reorders memory traffic, never arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

#: dtypes whose fused chains compute in float32 (XLA's CPU code for them is slower)
HALF_DTYPES = (tf.bfloat16, tf.float16)


def exact(t: tf.Tensor) -> tf.Tensor:
    """The rounding of a chain that runs in its inputs' own dtype: none."""
    return t


def fused(chain: Callable) -> Callable:
    """``chain(*tensors, rounded=exact)`` compiled by XLA into one kernel.

    ``chain`` is written in plain element-wise ops and passes every arithmetic result
    through ``rounded``. With 16-bit inputs the kernel computes in float32, where XLA's
    CPU code is faster, and ``rounded`` rounds each result to the 16-bit type, as each
    unfused op stores it; the outputs are cast back. Called as ``chain(*tensors)``,
    the same chain is the unfused graph.
    """

    def kernel(*tensors):
        dtype = tensors[0].dtype
        if dtype not in HALF_DTYPES:
            return chain(*tensors)

        def rounded(t):
            return tf.cast(tf.cast(t, dtype), tf.float32)

        out = chain(*(tf.cast(t, tf.float32) for t in tensors), rounded=rounded)
        return tf.nest.map_structure(lambda t: tf.cast(t, dtype), out)

    compiled = tf.function(kernel, jit_compile=True, autograph=False, reduce_retracing=True)
    compiled.chain = chain
    return compiled
