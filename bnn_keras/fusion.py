"""Element-wise chains compiled by XLA into one loop, for the training graph.

TensorFlow's CPU runtime runs each element-wise op as its own pass over the tensor
(Eigen kernels), so a chain like RPReLU's ``relu(x - g) + a * min(x - g, 0) + z`` reads
and writes an activation-sized tensor once per op. Around binary convolutions those
passes, not the convolutions, bound a training step on a CPU, and more so in bfloat16,
whose convolutions are faster. :func:`fused` compiles a chain with XLA
(``jit_compile``), which emits it as one loop; the graph around it keeps TensorFlow's
kernels (oneDNN convolutions, Eigen reductions, which XLA's CPU backend runs slower).

The training graph uses them: gradients, forwards under ``training=True``, and the
inference forwards of evaluation during training, traced inside :func:`fusing_inference`
(:class:`~bnn_keras.training.TrainingModel`'s ``test_step``), whose graph nothing
converts. Any other inference graph (export, ``predict``) runs the same chain as plain
ops, the patterns LCE's converter lowers. A chain is fused only where it gives its
unfused ops' values bit for bit, in float32 and bfloat16 alike (``tests/test_fusion.py``):
it reorders memory traffic, never arithmetic.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import tensorflow as tf

#: dtypes whose fused chains compute in float32 (XLA's CPU code for them is slower)
HALF_DTYPES = (tf.bfloat16, tf.float16)

_tracing = threading.local()  # per thread: tf.function traces in its caller's thread


@contextlib.contextmanager
def fusing_inference() -> Iterator[None]:
    """Forwards traced inside fuse their chains under ``training=False`` too.

    For graphs that are run, never converted: an exported graph must keep the plain ops
    LCE lowers (``PRELU``), so inference fuses only where asked.
    """
    before = getattr(_tracing, "inference", False)
    _tracing.inference = True
    try:
        yield
    finally:
        _tracing.inference = before


def fuse_forward(training) -> bool:
    """Whether a layer called with ``training`` runs its forward chain fused: when
    training, or inside :func:`fusing_inference`."""
    return training is True or getattr(_tracing, "inference", False)


def unrounded(t: tf.Tensor) -> tf.Tensor:
    """The identity: the ``rounded`` of a chain that runs in its inputs' own dtype,
    where each op already stores its result in that dtype, so nothing is rounded."""
    return t


def fused(chain: Callable) -> Callable:
    """``chain(*tensors, rounded=unrounded)`` compiled by XLA into one kernel.

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
