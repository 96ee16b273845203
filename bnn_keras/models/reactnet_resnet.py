"""ReActNet on the Bi-Real Net ResNet backbone: ``reactnet_18`` and ``reactnet_34``.

One binary 3x3 conv per block with a real shortcut around it (Bi-Real Net), ReActNet's
``LearnableBias`` before every sign and ``RPReLU`` after every residual add.

Variants:
    ``bn``   BatchNorm after every binary conv, the stem and the downsample shortcut.
    ``bf``   BN-free ("BNN - BN = ?", Chen et al. 2021): scaled-WS convs, residuals
             ``h + alpha * f(beta * h)`` with ``alpha = 0.2`` and ``beta = 1/sqrt(Var)``,
             the expected variance growing by ``alpha**2`` per block and reset to 1 at
             every stage transition (whose shortcut takes ``beta * h`` too). The block's
             RPReLU is part of ``f`` (see ``_bf_block``).
    ``none`` ``bn`` with the BatchNorm layers removed (the paper's failure baseline).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tf_keras as keras

from bnn_keras.layers import LearnableBias, RPReLU
from bnn_keras.models.common import (
    VARIANTS_BN_BF_NONE,
    batch_norm,
    binary_conv,
    classifier_head,
    real_conv,
    resnet_stem,
    resolve_stem,
)
from bnn_keras.models.registry import register

WIDTHS = (64, 128, 256, 512)


def _block(x: tf.Tensor, filters: int, strides: int, variant: str, name: str,
           alpha: float, beta: float) -> tf.Tensor:
    if variant == "bf":
        return _bf_block(x, filters, strides, name, alpha, beta)
    in_filters = int(x.shape[-1])
    h = LearnableBias(name=f"{name}_move")(x)
    h = binary_conv(h, filters, 3, strides=strides, variant=variant, name=f"{name}_conv")
    h = batch_norm(h, variant, f"{name}_bn")
    shortcut = x
    if strides != 1 or in_filters != filters:
        if strides != 1:
            shortcut = keras.layers.AveragePooling2D(strides, name=f"{name}_down_pool")(shortcut)
        shortcut = real_conv(shortcut, filters, 1, variant=variant, name=f"{name}_down_conv")
        shortcut = batch_norm(shortcut, variant, f"{name}_down_bn")
    x = keras.layers.Add(name=f"{name}_add")([h, shortcut])
    return RPReLU(name=f"{name}_rprelu")(x)


def _bf_block(x: tf.Tensor, filters: int, strides: int, name: str, alpha: float,
              beta: float) -> tf.Tensor:
    """``h + alpha * f(beta * h)`` with ``f = RPReLU(bconv(sign(. + b)))``.

    ``alpha`` is folded into the binary conv's ``output_scale`` and ``beta`` into the
    ``LearnableBias`` before the sign (and into the shortcut conv of a transition block),
    so the deployed graph has no float multiplies. The RPReLU sits inside the branch, so
    the residual stream is exactly the NF form; placed after the add (as in the paper's
    code) it shrinks the stream's std to about 0.2 by stage 3 at initialisation.
    The average pool of a transition shortcut divides the variance of uncorrelated
    features by ``strides**2``, so the shortcut conv starts with gain ``strides * beta``.
    """
    in_filters = int(x.shape[-1])
    h = LearnableBias(scale=beta, name=f"{name}_move")(x)
    h = binary_conv(h, filters, 3, strides=strides, variant="bf", name=f"{name}_conv",
                    output_scale=alpha)
    h = RPReLU(name=f"{name}_rprelu")(h)
    shortcut = x
    if strides != 1 or in_filters != filters:
        if strides != 1:
            shortcut = keras.layers.AveragePooling2D(strides, name=f"{name}_down_pool")(shortcut)
        shortcut = real_conv(shortcut, filters, 1, variant="bf", name=f"{name}_down_conv",
                             output_scale=beta * strides)
    return keras.layers.Add(name=f"{name}_add")([h, shortcut])


def build_reactnet_resnet(blocks: Sequence[int], *, variant: str, num_classes: int,
                          input_shape: tuple[int, int, int], stem: str = "auto",
                          alpha: float = 0.2, widths: Sequence[int] = WIDTHS,
                          name: str = "reactnet") -> keras.Model:
    """Build a ReActNet ResNet with ``blocks[i]`` blocks in stage ``i``."""
    stem = resolve_stem(stem, input_shape)
    inputs = keras.Input(input_shape, name="image")
    x = resnet_stem(inputs, widths[0], stem, variant)

    for stage, (n_blocks, filters) in enumerate(zip(blocks, widths), start=1):
        expected_var = 1.0  # the stem's / previous transition's output has unit variance
        for b in range(n_blocks):
            strides = 2 if (b == 0 and stage > 1) else 1
            transition = strides != 1 or int(x.shape[-1]) != filters
            if transition:
                expected_var = 1.0
            beta = expected_var**-0.5
            x = _block(x, filters, strides, variant, f"stage{stage}_block{b + 1}", alpha, beta)
            expected_var += alpha**2
    outputs = classifier_head(x, num_classes, normalizer_free=variant == "bf")
    return keras.Model(inputs, outputs, name=f"{name}_{variant}")


@register("reactnet_18", variants=VARIANTS_BN_BF_NONE, family="reactnet",
          paper="ReActNet (Liu et al., ECCV 2020) on Bi-Real Net 18; BN-free: Chen et al. 2021")
def reactnet_18(variant: str, num_classes: int, input_shape, **kwargs) -> keras.Model:
    return build_reactnet_resnet((4, 4, 4, 4), variant=variant, num_classes=num_classes,
                                 input_shape=input_shape, name="reactnet_18", **kwargs)


@register("reactnet_34", variants=VARIANTS_BN_BF_NONE, family="reactnet",
          paper="ReActNet (Liu et al., ECCV 2020) on Bi-Real Net 34; BN-free: Chen et al. 2021")
def reactnet_34(variant: str, num_classes: int, input_shape, **kwargs) -> keras.Model:
    return build_reactnet_resnet((6, 8, 12, 6), variant=variant, num_classes=num_classes,
                                 input_shape=input_shape, name="reactnet_34", **kwargs)
