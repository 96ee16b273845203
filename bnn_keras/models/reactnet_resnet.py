"""ReActNet on the Bi-Real Net ResNet backbone: ``reactnet_18`` and ``reactnet_34``.

One binary 3x3 conv per block with a real shortcut around it (Bi-Real Net), ReActNet's
``LearnableBias`` before every sign and ``RPReLU`` after every residual add. Each block::

    y = RPReLU(BN(bconv3x3(sign(x + b))) + shortcut(x))

with ``shortcut`` the identity, or at a stage's first block ``BN(conv1x1(avgpool2(x)))``.
The stem is a 7x7 stride-2 conv, BN and a 3x3 stride-2 max-pool (``stem="imagenet"``,
what the official code builds at every input size) or a 3x3 conv and BN (``"small"``).

Two official sources, chosen with ``source``:

``"bnn_nobn"`` (default)  VITA-Group/BNN_NoBN ``models/Qaw_reactnet_18_{bn,bf,none}.py``:
    the shortcut's 1x1 conv has a binary kernel (``sign(W)`` times ``mean|W|`` per output
    channel) on its real-valued input. ``reactnet_34`` is the same class with
    ``[6, 8, 12, 6]`` blocks.
``"reactnet"``  liuzechun/ReActNet ``resnet/2_step2/birealnet.py``: a real-valued
    shortcut conv; ``bn`` only (that code has BatchNorm).

Variants:
    ``bn``   BatchNorm after every binary conv, the stem and the downsample shortcut.
    ``bf``   BN-free ("BNN - BN = ?", Chen et al. 2021), ``Qaw_reactnet_18_bf.py``:
             scaled-WS convs, no BN; each block
             ``y = RPReLU(alpha * bconv(sign(beta * x + b)) + shortcut(beta * x))``
             (the identity shortcut takes ``x`` itself) with ``alpha = 0.2`` folded into
             the binary conv and ``beta`` into the bias before the sign and into the
             shortcut conv. ``beta = 1/sqrt(expected variance)`` follows the official
             schedule (:func:`bf_betas`).
    ``none`` ``bn`` with the BatchNorm layers removed (the paper's failure baseline).

Options (:class:`ReActNetResNetOptions`, all defaulting to the official behaviour):
``align`` and ``binary_pad`` (:func:`bnn_keras.models.common.check_conventions`); for
``bf``, ``rprelu="branch"`` puts each RPReLU inside the residual branch (before the add),
and ``pool_gain=True`` starts the transition shortcut with gain ``2 * beta`` to undo the
average pool's variance reduction. Their measured effect: ``zoo/reactnet.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    binary_weight_conv,
    finish_network,
    real_conv,
    resnet_stem,
    start_network,
)
from bnn_keras.models.registry import register
from bnn_keras.models.variance import variance_schedule

WIDTHS = (64, 128, 256, 512)
SOURCES = ("bnn_nobn", "reactnet")


def bf_betas(blocks: Sequence[int], alpha: float) -> list[list[float]]:
    """``beta`` of every block, per stage, as ``Qaw_reactnet_18_bf.BiRealNet._make_layer``
    computes it: :func:`~bnn_keras.models.variance.variance_schedule` with each stage's
    first block a transition reset after it (it reads the incoming variance, the next
    block reads 1, so the first two blocks of a stage both get ``beta = 1``; the net's
    first block, which has no downsample shortcut, already reads 1)."""
    schedule = variance_schedule((b == 0 for n_blocks in blocks for b in range(n_blocks)),
                                 alpha, reset_after=True)
    return [[next(schedule) for _ in range(n_blocks)] for n_blocks in blocks]


@dataclass(frozen=True)
class ReActNetResNetOptions(BfOptions):
    """What a ReActNet ResNet can vary (defaults: the official network):
    :class:`~bnn_keras.models.common.BfOptions`, the official ``source`` (see the module
    docstring) and the channels of each stage, ``widths``."""

    source: str = "bnn_nobn"
    widths: tuple[int, ...] = WIDTHS

    def check(self, variant: str) -> None:
        super().check(variant)
        if self.source not in SOURCES:
            raise BnnError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.source == "reactnet" and variant != "bn":
            raise BnnError(f"source 'reactnet' (liuzechun/ReActNet) has only the bn variant, "
                           f"not {variant!r}; use source='bnn_nobn'")


def _block(x: tf.Tensor, filters: int, strides: int, options: ReActNetResNetOptions, *,
           variant: str, name: str, beta: float) -> tf.Tensor:
    bf = variant == "bf"
    alpha, init = options.alpha, options.init
    in_filters = int(x.shape[-1])
    h = LearnableBias(scale=beta if bf else 1.0, name=f"{name}_move")(x)
    h = binary_conv(h, filters, 3, strides=strides, variant=variant, name=f"{name}_conv",
                    output_scale=alpha if bf else 1.0, pad_value=options.binary_pad,
                    init=init)
    h = batch_norm(h, variant, f"{name}_bn")
    in_branch = bf and options.rprelu == "branch"
    if in_branch:
        h = RPReLU(name=f"{name}_rprelu")(h)
    shortcut = x
    if strides != 1 or in_filters != filters:
        if strides != 1:
            shortcut = avg_pool(shortcut, strides, f"{name}_down_pool")
        gain = beta * (strides if options.pool_gain else 1) if bf else 1.0
        if options.source == "reactnet":
            shortcut = real_conv(shortcut, filters, 1, variant=variant,
                                 name=f"{name}_down_conv", output_scale=gain, init=init)
        else:
            shortcut = binary_weight_conv(shortcut, filters, variant=variant,
                                          name=f"{name}_down_conv", output_scale=gain,
                                          init=init)
        shortcut = batch_norm(shortcut, variant, f"{name}_down_bn")
    x = keras.layers.Add(name=f"{name}_add")([h, shortcut])
    return x if in_branch else RPReLU(name=f"{name}_rprelu")(x)


def build_reactnet_resnet(blocks: Sequence[int],
                          options: ReActNetResNetOptions = ReActNetResNetOptions(), *,
                          variant: str, num_classes: int, input_shape: tuple[int, int, int],
                          name: str = "reactnet") -> keras.Model:
    """Build a ReActNet ResNet with ``blocks[i]`` blocks in stage ``i``.

    Args:
        blocks: blocks per stage, ``(4, 4, 4, 4)`` for ReActNet-18.
        options: what the network varies (:class:`ReActNetResNetOptions`).
        variant: ``"bn"``, ``"bf"`` or ``"none"``.
        num_classes: classifier outputs (logits).
        input_shape: ``(height, width, channels)``.
        name: model name prefix.
    """
    inputs, x, stem = start_network(input_shape, options, variant)
    widths = options.widths
    x = resnet_stem(x, widths[0], stem, variant, options.init)
    betas = bf_betas(blocks, options.alpha)
    for stage, (n_blocks, filters) in enumerate(zip(blocks, widths), start=1):
        for b in range(n_blocks):
            x = _block(x, filters, 2 if (b == 0 and stage > 1) else 1, options,
                       variant=variant, name=f"stage{stage}_block{b + 1}",
                       beta=betas[stage - 1][b])
    return finish_network(inputs, x, num_classes, options, variant, name)


@register("reactnet_18", variants=VARIANTS_BN_BF_NONE, family="reactnet",
          paper="ReActNet (Liu et al., ECCV 2020) on Bi-Real Net 18; BN-free: Chen et al. 2021",
          options=ReActNetResNetOptions)
def reactnet_18(variant: str, num_classes: int, input_shape,
                options: ReActNetResNetOptions) -> keras.Model:
    """ReActNet-18 (see :func:`build_reactnet_resnet`)."""
    return build_reactnet_resnet((4, 4, 4, 4), options, variant=variant,
                                 num_classes=num_classes, input_shape=input_shape,
                                 name="reactnet_18")


@register("reactnet_34", variants=VARIANTS_BN_BF_NONE, family="reactnet",
          paper="ReActNet (Liu et al., ECCV 2020) on Bi-Real Net 34; BN-free: Chen et al. 2021",
          options=ReActNetResNetOptions)
def reactnet_34(variant: str, num_classes: int, input_shape,
                options: ReActNetResNetOptions) -> keras.Model:
    """ReActNet-34 (see :func:`build_reactnet_resnet`)."""
    return build_reactnet_resnet((6, 8, 12, 6), options, variant=variant,
                                 num_classes=num_classes, input_shape=input_shape,
                                 name="reactnet_34")
