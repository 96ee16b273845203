"""Pieces shared by the model families: per-variant conv factories, stems and heads."""

from __future__ import annotations

import larq as lq
import tensorflow as tf
import tf_keras as keras

from bnn_keras.layers import ScaledStdConv2D, ScaledStdQuantConv2D

VARIANTS_BN_BF_NONE = ("bf", "bn", "none")
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(x: tf.Tensor, variant: str, name: str) -> tf.Tensor:
    """BatchNorm in the ``bn`` variant, nothing otherwise."""
    if variant != "bn":
        return x
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name
    )(x)


def binary_conv(x: tf.Tensor, filters: int, kernel_size: int, *, strides: int = 1,
                variant: str, name: str, output_scale: float = 1.0,
                input_quantizer="approx_sign") -> tf.Tensor:
    """A binary conv (both operands binarised) that LCE lowers to ``LceBconv2d``.

    ``bf``: :class:`ScaledStdQuantConv2D` with ``output_scale`` folded in; ``bn`` /
    ``none``: larq's ``QuantConv2D`` with magnitude-aware weights (ReActNet, Bi-Real)
    and ``output_scale`` applied as a multiply (it is 1 there).
    """
    common = dict(strides=strides, padding="same", pad_values=1.0, use_bias=False,
                  input_quantizer=input_quantizer, name=name)
    if variant == "bf":
        return ScaledStdQuantConv2D(filters, kernel_size, output_scale=output_scale,
                                    **common)(x)
    y = lq.layers.QuantConv2D(filters, kernel_size, kernel_quantizer="magnitude_aware_sign",
                              kernel_constraint="weight_clip",
                              kernel_initializer="glorot_normal", **common)(x)
    if output_scale != 1.0:
        y = keras.layers.Rescaling(output_scale, name=f"{name}_scale")(y)
    return y


def real_conv(x: tf.Tensor, filters: int, kernel_size: int, *, strides: int = 1,
              variant: str, name: str, output_scale: float = 1.0) -> tf.Tensor:
    """A real-valued conv: weight-standardised in ``bf``, plain ``Conv2D`` otherwise."""
    if variant == "bf":
        return ScaledStdConv2D(filters, kernel_size, strides=strides, padding="same",
                               output_scale=output_scale, name=name)(x)
    y = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                            use_bias=False, kernel_initializer="he_normal", name=name)(x)
    if output_scale != 1.0:
        y = keras.layers.Rescaling(output_scale, name=f"{name}_scale")(y)
    return y


def resolve_stem(stem: str, input_shape: tuple[int, int, int]) -> str:
    """``"auto"`` picks ``"imagenet"`` for inputs of 112 pixels and more, else ``"small"``."""
    if stem == "auto":
        return "imagenet" if min(input_shape[:2]) >= 112 else "small"
    if stem not in ("small", "imagenet"):
        raise ValueError(f"stem must be 'auto', 'small' or 'imagenet', got {stem!r}")
    return stem


def resnet_stem(inputs: tf.Tensor, filters: int, stem: str, variant: str) -> tf.Tensor:
    """The ResNet stem: 7x7 stride-2 conv + 3x3 stride-2 max-pool (``"imagenet"``) or a
    3x3 stride-1 conv (``"small"``), with BN after the conv in the ``bn`` variant."""
    if stem == "imagenet":
        x = real_conv(inputs, filters, 7, strides=2, variant=variant, name="stem_conv")
        x = batch_norm(x, variant, "stem_bn")
        return keras.layers.MaxPool2D(3, strides=2, padding="same", name="stem_pool")(x)
    x = real_conv(inputs, filters, 3, variant=variant, name="stem_conv")
    return batch_norm(x, variant, "stem_bn")


def classifier_head(x: tf.Tensor, num_classes: int, *, normalizer_free: bool = False
                    ) -> tf.Tensor:
    """Global average pool then a float ``Dense`` named ``classifier`` (logits).

    ``normalizer_free`` initialises the kernel from N(0, 0.01), as the NF-ResNets and
    NFNets do (Brock et al. 2021): without normalisation the pooled features of a
    BN-free net grow with depth (std ~4-5 for reactnet_18 ``bf``), and Keras's default
    Glorot kernel would start it with logits of std ~7 and a loss far above log(classes).
    """
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    initializer = (keras.initializers.RandomNormal(0.0, 0.01) if normalizer_free
                   else "glorot_uniform")
    return keras.layers.Dense(num_classes, kernel_initializer=initializer,
                              name="classifier")(x)
