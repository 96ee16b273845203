"""ReActNet-A (Liu et al., ECCV 2020): the MobileNet-V1 layout with binary convs.

Stem: a real 3x3 conv, 3 -> 32, stride 2 (stride 1 with the ``small`` stem). Then 13
blocks with (in, out, stride) in :data:`BLOCKS`, a global pool and the classifier.
Each block is two residual halves:

1. ``sign(x + b)`` -> binary 3x3 conv ``in -> in`` (stride 1 or 2), plus the shortcut
   (a 2x2 average pool when the stride is 2), then RPReLU;
2. ``sign(h + b)`` -> binary 1x1 conv ``in -> in`` plus ``h`` when ``in == out``;
   otherwise two such convs, each plus ``h``, concatenated to ``2 * in``; RPReLU.

Variants:
    ``bn``   BatchNorm after the stem and every binary conv (the paper's model).
    ``bf``   BN-free, after "BNN - BN = ?" (Chen et al., CVPR 2021): scaled-WS convs
             everywhere (stem included), each half ``s + alpha * f(beta * h)`` with
             ``alpha = 0.2`` folded into the binary conv and ``beta = 1/sqrt(Var)`` into
             the bias before the sign; the expected variance grows by ``alpha**2`` per
             half and is reset to 1 at every stride-2 block, whose pooled shortcut is
             scaled by ``strides * beta``. As in :mod:`bnn_keras.models.reactnet_resnet`, each
             RPReLU sits inside its branch so the residual stream keeps the NF form.
    ``none`` ``bn`` with the BatchNorm layers removed (the failure baseline).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from bnn_keras.layers import LearnableBias, RPReLU
from bnn_keras.models.common import (
    VARIANTS_BN_BF_NONE,
    batch_norm,
    binary_conv,
    classifier_head,
    real_conv,
    resolve_stem,
)
from bnn_keras.models.registry import register

STEM_FILTERS = 32
#: (in channels, out channels, stride) of the 13 blocks.
BLOCKS: tuple[tuple[int, int, int], ...] = (
    (32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1),
    (256, 512, 2), *((512, 512, 1),) * 5, (512, 1024, 2), (1024, 1024, 1),
)


def _block(x: tf.Tensor, filters: int, strides: int, variant: str, name: str) -> tf.Tensor:
    """One ReActNet-A block in the ``bn`` or ``none`` variant."""
    in_filters = int(x.shape[-1])
    h = LearnableBias(name=f"{name}_move1")(x)
    h = binary_conv(h, in_filters, 3, strides=strides, variant=variant, name=f"{name}_conv3x3")
    h = batch_norm(h, variant, f"{name}_bn3x3")
    shortcut = x
    if strides != 1:
        shortcut = keras.layers.AveragePooling2D(strides, name=f"{name}_pool")(shortcut)
    h = keras.layers.Add(name=f"{name}_add1")([h, shortcut])
    h = RPReLU(name=f"{name}_rprelu1")(h)

    g = LearnableBias(name=f"{name}_move2")(h)
    halves = []
    for i in range(filters // in_filters):
        suffix = "" if filters == in_filters else f"_{i + 1}"
        y = binary_conv(g, in_filters, 1, variant=variant, name=f"{name}_conv1x1{suffix}")
        y = batch_norm(y, variant, f"{name}_bn1x1{suffix}")
        halves.append(keras.layers.Add(name=f"{name}_add2{suffix}")([y, h]))
    y = halves[0] if len(halves) == 1 else keras.layers.Concatenate(name=f"{name}_concat")(halves)
    return RPReLU(name=f"{name}_rprelu2")(y)


def _bf_block(x: tf.Tensor, filters: int, strides: int, name: str, alpha: float,
              beta1: float, beta2: float) -> tf.Tensor:
    """One BN-free block: ``h = s + alpha * f1(beta1 * x)``, ``y = h + alpha * f2(beta2 * h)``.

    ``f = RPReLU(bconv(sign(. + b)))``; ``alpha`` is the binary convs' ``output_scale`` and
    each ``beta`` the ``scale`` of the ``LearnableBias`` that export folds into the bias.
    ``s`` is ``x``, or ``strides * beta1 * avgpool(x)`` at stride 2 (the variance reset:
    as in :mod:`bnn_keras.models.reactnet_resnet`, an average pool divides the variance of
    spatially uncorrelated features by ``strides**2``). With two
    1x1 convs their outputs are concatenated before the RPReLU and the shortcut is
    ``[h, h]``.
    """
    in_filters = int(x.shape[-1])
    h = LearnableBias(scale=beta1, name=f"{name}_move1")(x)
    h = binary_conv(h, in_filters, 3, strides=strides, variant="bf", name=f"{name}_conv3x3",
                    output_scale=alpha)
    h = RPReLU(name=f"{name}_rprelu1")(h)
    shortcut = x
    if strides != 1:
        shortcut = keras.layers.AveragePooling2D(strides, name=f"{name}_pool")(shortcut)
        shortcut = keras.layers.Rescaling(beta1 * strides, name=f"{name}_pool_scale")(shortcut)
    h = keras.layers.Add(name=f"{name}_add1")([h, shortcut])

    g = LearnableBias(scale=beta2, name=f"{name}_move2")(h)
    convs = []
    for i in range(filters // in_filters):
        suffix = "" if filters == in_filters else f"_{i + 1}"
        convs.append(binary_conv(g, in_filters, 1, variant="bf", output_scale=alpha,
                                 name=f"{name}_conv1x1{suffix}"))
    shortcut = h
    if len(convs) > 1:
        y = keras.layers.Concatenate(name=f"{name}_concat")(convs)
        shortcut = keras.layers.Concatenate(name=f"{name}_shortcut_concat")([h] * len(convs))
    else:
        y = convs[0]
    y = RPReLU(name=f"{name}_rprelu2")(y)
    return keras.layers.Add(name=f"{name}_add2")([y, shortcut])


def build_reactnet_a(*, variant: str, num_classes: int, input_shape: tuple[int, int, int],
                     stem: str = "auto", alpha: float = 0.2, width: float = 1.0,
                     name: str = "reactnet_a") -> keras.Model:
    """Build ReActNet-A.

    Args:
        variant: ``"bn"``, ``"bf"`` or ``"none"`` (see the module docstring).
        num_classes: classifier outputs (logits).
        input_shape: ``(height, width, channels)``.
        stem: ``"imagenet"`` (stride-2 stem conv), ``"small"`` (stride 1) or ``"auto"``
            (``imagenet`` from 112 pixels up).
        alpha: the BN-free residual branch scale.
        width: channel multiplier for every layer (1.0 is the paper's model).
        name: model name prefix.
    """
    stem = resolve_stem(stem, input_shape)
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    inputs = keras.Input(input_shape, name="image")
    stem_filters = max(1, round(STEM_FILTERS * width))
    x = real_conv(inputs, stem_filters, 3, strides=2 if stem == "imagenet" else 1,
                  variant=variant, name="stem_conv")
    x = batch_norm(x, variant, "stem_bn")
    expected_var = 1.0
    for i, (c_in, c_out, strides) in enumerate(BLOCKS, start=1):
        filters = int(x.shape[-1]) * c_out // c_in  # out == in or out == 2 * in
        name_i = f"block{i}"
        if variant == "bf":
            if strides != 1:
                expected_var = 1.0  # the pooled shortcut is scaled to unit variance
            beta1 = expected_var**-0.5
            beta2 = (expected_var + alpha**2) ** -0.5
            x = _bf_block(x, filters, strides, name_i, alpha, beta1, beta2)
            expected_var += 2 * alpha**2
        else:
            x = _block(x, filters, strides, variant, name_i)
    outputs = classifier_head(x, num_classes, normalizer_free=variant == "bf")
    return keras.Model(inputs, outputs, name=f"{name}_{variant}")


@register("reactnet_a", variants=VARIANTS_BN_BF_NONE, family="reactnet",
          paper="ReActNet-A (Liu et al., ECCV 2020); BN-free: Chen et al., CVPR 2021")
def reactnet_a(variant: str, num_classes: int, input_shape: tuple[int, int, int],
               **kwargs) -> keras.Model:
    """ReActNet-A; ``kwargs`` go to :func:`build_reactnet_a` (``stem``, ``alpha``, ``width``)."""
    return build_reactnet_a(variant=variant, num_classes=num_classes, input_shape=input_shape,
                            **kwargs)
