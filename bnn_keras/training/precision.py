"""Mixed-precision training: the Keras dtype policy a run builds its network under.

Under ``mixed_bfloat16`` or ``mixed_float16`` every layer computes in 16 bits and keeps
float32 variables; the optimizer state, the loss (the trainer casts the logits to
float32), AGC (on the float32 gradients) and the weight standardisation of the WS
convolutions (:mod:`bnn_keras.layers.ws_conv`) stay float32. A binary conv multiplies
+-1 by +-1, exact in either 16-bit format until the sums. On a CPU the WS convs take
their bfloat16 weight gradient on small feature maps as a matmul, which oneDNN runs
faster there (:mod:`bnn_keras.layers.conv2d`). ``mixed_float16`` scales the
loss (Keras's dynamic ``LossScaleOptimizer``) so small gradients do not flush to zero;
bfloat16 has float32's range and needs no scaling. The saved ``model.keras`` is always
the float32 network (:func:`bnn_keras.models.dtypes.float32_model`): what is deployed
does not depend on how it was trained.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import tensorflow as tf
import tf_keras as keras

from bnn_keras.models.dtypes import dtype_policy

#: CPU flags (Linux ``/proc/cpuinfo``) of native bfloat16 arithmetic, which oneDNN's
#: bfloat16 convolutions use; without them bfloat16 is emulated and slower than float32
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether the CPU advertises native bfloat16 instructions (False where unknown)."""
    try:
        flags = set(Path(cpuinfo).read_text().split())
    except OSError:
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def resolve_precision(precision: str) -> str:
    """``precision`` (one of :data:`~bnn_keras.training.config.PRECISIONS`, as a
    :class:`~bnn_keras.training.config.TrainConfig` checked it), with ``auto`` resolved
    for this machine: ``mixed_bfloat16`` on a CPU with native bfloat16
    (:func:`cpu_has_bf16`) and no GPU, else ``float32``. A run resolves it once, when it
    starts, and stores the result.

    ``auto`` picks bfloat16 only where the CPU runs it natively: 1.6x float32's step on
    an AVX512-BF16 CPU, 1.8x with AMX, with the digits default run's test top-1 within
    float32's seed spread (zoo/results.md, "Mixed-precision training step"). A run's
    default stays ``float32``, the official training scripts' precision. On GPUs, where
    ``mixed_float16`` is the usual choice, ask for it explicitly.
    """
    if precision != "auto":
        return precision
    if tf.config.list_physical_devices("GPU") or not cpu_has_bf16():
        return "float32"
    return "mixed_bfloat16"


@contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Layers built in the block take the Keras policy ``precision`` (resolved:
    ``float32``, ``mixed_bfloat16`` or ``mixed_float16``); the global policy is restored
    afterwards.

    Example:
        ```python
        with precision_policy("mixed_bfloat16"):
            net = bnn_keras.models.create("reactnet_18", "bf", 10, (32, 32, 3))
        ```
    """
    with dtype_policy(precision):
        yield


def with_loss_scaling(optimizer: keras.optimizers.Optimizer,
                      precision: str) -> keras.optimizers.Optimizer:
    """``optimizer`` in a dynamic ``LossScaleOptimizer`` for ``mixed_float16``, else as is."""
    if precision == "mixed_float16":
        return keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer
