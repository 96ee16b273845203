"""ReActNet-A (Liu et al., ECCV 2020): the MobileNet-V1 layout with binary convs.

Stem: a real 3x3 conv, 3 -> 32, stride 2 (stride 1 with the ``small`` stem). Then 13
blocks with (in, out, stride) in :data:`BLOCKS`, a global pool and the classifier.
Each block is two residual halves:

1. ``sign(x + b)`` -> binary 3x3 conv ``in -> in`` (stride 1 or 2), plus the shortcut
   (a 2x2 average pool when the stride is 2), then RPReLU;
2. ``sign(h + b)`` -> binary 1x1 conv ``in -> in`` plus ``h`` when ``in == out``;
   otherwise two such convs, each plus ``h``, concatenated to ``2 * in``; RPReLU.

Variants (VITA-Group/BNN_NoBN ``models/Qaw_reactnet_A_{bn,bf,none}.py``; ``bn`` is also
liuzechun/ReActNet ``mobilenet/2_step2/reactnet.py``, the same function):
    ``bn``   BatchNorm after the stem and every binary conv (the paper's model).
    ``bf``   BN-free, after "BNN - BN = ?" (Chen et al., CVPR 2021): scaled-WS convs
             everywhere (stem included), no BN; each half is
             ``RPReLU(s + alpha * bconv(sign(beta * h + b)))`` with ``alpha = 0.2`` folded
             into the binary conv and ``beta`` into the bias before the sign; ``s`` is
             ``h``, or ``beta1 * avgpool(h)`` at stride 2. The betas follow the official
             schedule (:func:`bf_betas`).
    ``none`` ``bn`` with the BatchNorm layers removed (the failure baseline).

Options (:class:`ReActNetAOptions`, defaults the official behaviour): ``align`` and
``binary_pad`` (:func:`bnn_keras.models.common.check_conventions`); for ``bf``,
``rprelu="branch"`` (each RPReLU inside its branch, before the add) and ``pool_gain=True``
(the pooled shortcut scaled by ``2 * beta1``, undoing the pool's variance reduction);
``width`` multiplies every layer's channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.layers import LearnableBias, RPReLU
from bnn_keras.models.common import (
    VARIANTS_BN_BF_NONE,
    BfOptions,
    avg_pool,
    batch_norm,
    binary_conv,
    finish_network,
    real_conv,
    start_network,
)
from bnn_keras.models.registry import register
from bnn_keras.models.variance import variance_schedule

STEM_FILTERS = 32
#: (in channels, out channels, stride) of the 13 blocks.
BLOCKS: tuple[tuple[int, int, int], ...] = (
    (32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1),
    (256, 512, 2), *((512, 512, 1),) * 5, (512, 1024, 2), (1024, 1024, 1),
)


def bf_betas(alpha: float) -> list[tuple[float, float]]:
    """``(beta1, beta2)`` of every block as ``Qaw_reactnet_A_bf.reactnet.__init__``
    computes them: :func:`~bnn_keras.models.variance.variance_schedule` over the halves,
    the second half of a stride-2 block a transition reset after it (the stride-2 block
    still takes the accumulated betas, the next block starts again from 1)."""
    schedule = variance_schedule(
        (transition for _, _, strides in BLOCKS for transition in (False, strides == 2)),
        alpha, reset_after=True)
    return [(next(schedule), next(schedule)) for _ in BLOCKS]


@dataclass(frozen=True)
class ReActNetAOptions(BfOptions):
    """What ReActNet-A can vary (defaults: the paper's network):
    :class:`~bnn_keras.models.common.BfOptions` and ``width``, a channel multiplier for
    every layer."""

    width: float = 1.0

    def check(self, variant: str) -> None:
        super().check(variant)
        if self.width <= 0:
            raise BnnError(f"width must be > 0, got {self.width}")


def _block(x: tf.Tensor, filters: int, strides: int, options: ReActNetAOptions, *,
           variant: str, name: str, beta1: float, beta2: float) -> tf.Tensor:
    """One ReActNet-A block (see the module docstring)."""
    bf = variant == "bf"
    in_branch = bf and options.rprelu == "branch"
    in_filters = int(x.shape[-1])
    scale = options.alpha if bf else 1.0
    conv = dict(variant=variant, output_scale=scale, pad_value=options.binary_pad,
                init=options.init)
    h = LearnableBias(scale=beta1 if bf else 1.0, name=f"{name}_move1")(x)
    h = binary_conv(h, in_filters, 3, strides=strides, name=f"{name}_conv3x3", **conv)
    h = batch_norm(h, variant, f"{name}_bn3x3")
    if in_branch:
        h = RPReLU(name=f"{name}_rprelu1")(h)
    shortcut = x
    if strides != 1:
        shortcut = avg_pool(shortcut, strides, f"{name}_pool")
        if bf:
            gain = beta1 * (strides if options.pool_gain else 1)
            shortcut = keras.layers.Rescaling(gain, name=f"{name}_pool_scale")(shortcut)
    h = keras.layers.Add(name=f"{name}_add1")([h, shortcut])
    if not in_branch:
        h = RPReLU(name=f"{name}_rprelu1")(h)

    g = LearnableBias(scale=beta2 if bf else 1.0, name=f"{name}_move2")(h)
    n = filters // in_filters  # 1, or 2 convs concatenated
    convs = []
    for i in range(n):
        suffix = "" if n == 1 else f"_{i + 1}"
        y = binary_conv(g, in_filters, 1, name=f"{name}_conv1x1{suffix}", **conv)
        convs.append(batch_norm(y, variant, f"{name}_bn1x1{suffix}"))
    if in_branch:
        y = RPReLU(name=f"{name}_rprelu2")(
            convs[0] if n == 1 else keras.layers.Concatenate(name=f"{name}_concat")(convs))
        shortcut = h if n == 1 else keras.layers.Concatenate(
            name=f"{name}_shortcut_concat")([h] * n)
        return keras.layers.Add(name=f"{name}_add2")([y, shortcut])
    halves = [keras.layers.Add(name=f"{name}_add2{'' if n == 1 else f'_{i + 1}'}")([y, h])
              for i, y in enumerate(convs)]
    y = halves[0] if n == 1 else keras.layers.Concatenate(name=f"{name}_concat")(halves)
    return RPReLU(name=f"{name}_rprelu2")(y)


def build_reactnet_a(options: ReActNetAOptions = ReActNetAOptions(), *, variant: str,
                     num_classes: int, input_shape: tuple[int, int, int],
                     name: str = "reactnet_a") -> keras.Model:
    """Build ReActNet-A.

    Args:
        options: what the network varies (:class:`ReActNetAOptions`; ``stem``
            ``"imagenet"`` is the stride-2 stem conv the official code always builds,
            ``"small"`` stride 1, ``"auto"`` ``imagenet`` from 112 pixels up).
        variant: ``"bn"``, ``"bf"`` or ``"none"`` (see the module docstring).
        num_classes: classifier outputs (logits).
        input_shape: ``(height, width, channels)``.
        name: model name prefix.
    """
    inputs, x, stem = start_network(input_shape, options, variant)
    stem_filters = max(1, round(STEM_FILTERS * options.width))
    x = real_conv(x, stem_filters, 3, strides=2 if stem == "imagenet" else 1,
                  variant=variant, name="stem_conv", init=options.init)
    x = batch_norm(x, variant, "stem_bn")
    for i, ((c_in, c_out, strides), (beta1, beta2)) in enumerate(
            zip(BLOCKS, bf_betas(options.alpha)), start=1):
        filters = int(x.shape[-1]) * c_out // c_in  # out == in or out == 2 * in
        x = _block(x, filters, strides, options, variant=variant, name=f"block{i}",
                   beta1=beta1, beta2=beta2)
    return finish_network(inputs, x, num_classes, options, variant, name)


@register("reactnet_a", variants=VARIANTS_BN_BF_NONE, family="reactnet",
          paper="ReActNet-A (Liu et al., ECCV 2020); BN-free: Chen et al., CVPR 2021",
          options=ReActNetAOptions)
def reactnet_a(variant: str, num_classes: int, input_shape: tuple[int, int, int],
               options: ReActNetAOptions) -> keras.Model:
    """ReActNet-A (see :func:`build_reactnet_a`)."""
    return build_reactnet_a(options, variant=variant, num_classes=num_classes,
                            input_shape=input_shape)
