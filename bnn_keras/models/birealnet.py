"""Bi-Real Net (Liu et al., ECCV 2018): ``birealnet_18`` and ``birealnet_34``.

Stages of 64/128/256/512 channels with ``[4, 4, 4, 4]`` (18) or ``[6, 8, 12, 6]`` (34)
blocks, each ``BN(bconv3x3(sign(x))) + shortcut``: one binary 3x3 conv per block and a
real-valued shortcut around it. The first block of stages 2-4 has stride 2 and a
downsampling shortcut ``2x2 average pool -> real 1x1 conv -> BN``. The stem is a 7x7
stride-2 conv, BN and a 3x3 stride-2 max-pool (``imagenet``) or a 3x3 conv and BN
(``small``, for inputs under 112 pixels); then global pool and the classifier.
Activations are binarised with :class:`~bnn_keras.quantizers.ApproxSign` (Bi-Real's
piecewise-quadratic gradient) and weights with :class:`~bnn_keras.quantizers.ScaledSign`
(the official ``HardBinaryConv``: sign times the mean |w| per filter).
There is no other nonlinearity and no learnable bias before the sign (that is ReActNet,
see :mod:`bnn_keras.models.reactnet_resnet`).

Variants:
    ``bn``  the paper's model, as liuzechun/Bi-Real-net
            ``pytorch_implementation/BiReal18_34/birealnet.py`` builds it.
    ``bf``  BN-free (new: no published Bi-Real Net has one): scaled-WS convs, each block
            ``h + alpha * bconv(sign(h))`` with ``alpha = 0.2`` folded into the binary
            conv. A sign ignores any positive scale, so no ``beta`` is needed before
            it; the transition shortcut conv has the gain ``strides * beta``, ``beta``
            from :func:`~bnn_keras.models.variance.variance_schedule`, which restarts the
            variance at 1 before a transition (so that ``beta`` is 1).

Options (:class:`BiRealNetOptions`): ``align`` and ``binary_pad``
(:func:`bnn_keras.models.common.check_conventions`), ``stem``, ``alpha`` and ``widths``;
the defaults compute the official network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf
import tf_keras as keras

from bnn_keras.models.common import (
    NetOptions,
    avg_pool,
    batch_norm,
    binary_conv,
    finish_network,
    real_conv,
    resnet_stem,
    start_network,
)
from bnn_keras.models.registry import register
from bnn_keras.models.variance import variance_schedule

VARIANTS = ("bn", "bf")
WIDTHS = (64, 128, 256, 512)


@dataclass(frozen=True)
class BiRealNetOptions(NetOptions):
    """What a Bi-Real Net can vary (defaults: the paper's network):
    :class:`~bnn_keras.models.common.NetOptions` and the channels of each stage,
    ``widths``."""

    widths: tuple[int, ...] = WIDTHS


def _block(x: tf.Tensor, filters: int, strides: int, options: BiRealNetOptions, *,
           variant: str, name: str, beta: float) -> tf.Tensor:
    in_filters = int(x.shape[-1])
    bf = variant == "bf"
    h = binary_conv(x, filters, 3, strides=strides, variant=variant, name=f"{name}_conv",
                    output_scale=options.alpha if bf else 1.0, pad_value=options.binary_pad,
                    init=options.init)
    h = batch_norm(h, variant, f"{name}_bn")
    shortcut = x
    if strides != 1 or in_filters != filters:
        if strides != 1:
            shortcut = avg_pool(shortcut, strides, f"{name}_down_pool")
        shortcut = real_conv(shortcut, filters, 1, variant=variant, name=f"{name}_down_conv",
                             output_scale=beta * strides if bf else 1.0, init=options.init)
        shortcut = batch_norm(shortcut, variant, f"{name}_down_bn")
    return keras.layers.Add(name=f"{name}_add")([h, shortcut])


def build_birealnet(blocks: Sequence[int], options: BiRealNetOptions = BiRealNetOptions(), *,
                    variant: str, num_classes: int, input_shape: tuple[int, int, int],
                    name: str = "birealnet") -> keras.Model:
    """Build a Bi-Real Net with ``blocks[i]`` blocks in stage ``i``.

    Args:
        blocks: blocks per stage, e.g. ``(4, 4, 4, 4)`` for Bi-Real Net 18.
        options: what the network varies (:class:`BiRealNetOptions`).
        variant: ``"bn"`` or ``"bf"``.
        num_classes: classifier outputs (logits).
        input_shape: ``(height, width, channels)``.
        name: model name prefix.
    """
    inputs, x, stem = start_network(input_shape, options, variant)
    x = resnet_stem(x, options.widths[0], stem, variant, options.init)
    # a stage's first block has the downsample shortcut, except in stage 1 (stem width)
    betas = variance_schedule((b == 0 and stage > 1 for stage, n_blocks in
                               enumerate(blocks, start=1) for b in range(n_blocks)),
                              options.alpha)
    for stage, (n_blocks, filters) in enumerate(zip(blocks, options.widths), start=1):
        for b in range(n_blocks):
            strides = 2 if (b == 0 and stage > 1) else 1
            x = _block(x, filters, strides, options, variant=variant,
                       name=f"stage{stage}_block{b + 1}", beta=next(betas))
    return finish_network(inputs, x, num_classes, options, variant, name)


@register("birealnet_18", variants=VARIANTS, family="birealnet",
          paper="Bi-Real Net (Liu et al., ECCV 2018), 18 layers; bf variant is new",
          options=BiRealNetOptions)
def birealnet_18(variant: str, num_classes: int, input_shape: tuple[int, int, int],
                 options: BiRealNetOptions) -> keras.Model:
    """Bi-Real Net 18 (see :func:`build_birealnet`)."""
    return build_birealnet((4, 4, 4, 4), options, variant=variant, num_classes=num_classes,
                           input_shape=input_shape, name="birealnet_18")


@register("birealnet_34", variants=VARIANTS, family="birealnet",
          paper="Bi-Real Net (Liu et al., ECCV 2018), 34 layers; bf variant is new",
          options=BiRealNetOptions)
def birealnet_34(variant: str, num_classes: int, input_shape: tuple[int, int, int],
                 options: BiRealNetOptions) -> keras.Model:
    """Bi-Real Net 34 (see :func:`build_birealnet`)."""
    return build_birealnet((6, 8, 12, 6), options, variant=variant, num_classes=num_classes,
                           input_shape=input_shape, name="birealnet_34")
