"""Pieces shared by the model families: per-variant conv factories, stems and heads."""

from __future__ import annotations

import larq as lq
import tensorflow as tf
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.layers import Rotate180, ScaledStdConv2D, ScaledStdQuantConv2D

VARIANTS_BN_BF_NONE = ("bf", "bn", "none")
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
#: ``"torch"``: stride-2 layers pad as the official PyTorch code does (the input is
#: rotated by 180 degrees, see :class:`~bnn_keras.layers.Rotate180`); ``"tf"``: as
#: TensorFlow's ``"same"`` does, one row and column later.
ALIGNS = ("torch", "tf")


def check_conventions(align: str, binary_pad: float) -> None:
    """Raise :class:`BnnError` unless ``align`` is in :data:`ALIGNS` and ``binary_pad`` is
    0 (PyTorch's zero padding of the binarised input, the official nets) or 1 (+1 padding,
    which LCE computes without its padding correction)."""
    if align not in ALIGNS:
        raise BnnError(f"align must be one of {', '.join(ALIGNS)}, got {align!r}")
    if binary_pad not in (0.0, 1.0):
        raise BnnError(f"binary_pad must be 0 or 1, got {binary_pad!r}")


#: where a BN-free block's RPReLU sits: on the residual stream after the add (the
#: official code) or inside the branch, before the add.
RPRELU_PLACES = ("stream", "branch")


def check_bf_options(variant: str, rprelu: str, pool_gain: bool) -> None:
    """Raise :class:`BnnError` unless ``rprelu`` is in :data:`RPRELU_PLACES` and the two
    BN-free options are left at their defaults outside the ``bf`` variant."""
    if rprelu not in RPRELU_PLACES:
        raise BnnError(f"rprelu must be one of {', '.join(RPRELU_PLACES)}, got {rprelu!r}")
    if variant != "bf" and (rprelu != "stream" or pool_gain):
        raise BnnError("rprelu and pool_gain are options of the bf variant")


def network_input(input_shape: tuple[int, int, int], align: str
                  ) -> tuple[tf.Tensor, tf.Tensor]:
    """The model's input and the tensor the stem reads: the input rotated by 180 degrees
    when ``align == "torch"``."""
    inputs = keras.Input(input_shape, name="image")
    return inputs, (Rotate180(name="rotate180")(inputs) if align == "torch" else inputs)


def avg_pool(x: tf.Tensor, strides: int, name: str) -> tf.Tensor:
    """A shortcut's ``strides x strides`` average pool, PyTorch's ``nn.AvgPool2d(strides)``.

    Raises:
        BnnError: when the feature map does not divide by ``strides``: the strided conv
            beside the pool would then give a larger map (in the official code too).
    """
    height, width = (int(d) for d in x.shape[1:3])
    if height % strides or width % strides:
        raise BnnError(f"{name}: a {height}x{width} feature map does not halve evenly; "
                       "choose an input size the network halves to 1x1 (a multiple of 32)")
    return keras.layers.AveragePooling2D(strides, name=name)(x)


def batch_norm(x: tf.Tensor, variant: str, name: str) -> tf.Tensor:
    """BatchNorm in the ``bn`` variant, nothing otherwise."""
    if variant != "bn":
        return x
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name
    )(x)


def binary_conv(x: tf.Tensor, filters: int, kernel_size: int, *, strides: int = 1,
                variant: str, name: str, output_scale: float = 1.0, pad_value: float = 0.0,
                input_quantizer="approx_sign") -> tf.Tensor:
    """A binary conv (both operands binarised) that LCE lowers to ``LceBconv2d``.

    ``bf``: :class:`ScaledStdQuantConv2D` with ``output_scale`` folded in; ``bn`` /
    ``none``: larq's ``QuantConv2D`` with magnitude-aware weights (ReActNet, Bi-Real)
    and ``output_scale`` applied as a multiply (it is 1 there). ``pad_value`` is what
    "same" padding puts around the binarised input: 0 as ``F.conv2d(sign(x), padding=1)``
    in the official code, or +1.
    """
    common = dict(strides=strides, padding="same", pad_values=float(pad_value),
                  use_bias=False, input_quantizer=input_quantizer, name=name)
    if variant == "bf":
        return ScaledStdQuantConv2D(filters, kernel_size, output_scale=output_scale,
                                    **common)(x)
    y = lq.layers.QuantConv2D(filters, kernel_size, kernel_quantizer="magnitude_aware_sign",
                              kernel_constraint="weight_clip",
                              kernel_initializer="glorot_normal", **common)(x)
    if output_scale != 1.0:
        y = keras.layers.Rescaling(output_scale, name=f"{name}_scale")(y)
    return y


def binary_weight_conv(x: tf.Tensor, filters: int, *, variant: str, name: str,
                       output_scale: float = 1.0) -> tf.Tensor:
    """A 1x1 conv with a binary kernel on a real-valued input (BNN_NoBN's downsample
    ``binaryconv1x1``): a float conv in LCE, with +-1 times one magnitude per output
    channel as its kernel. ``bf``: scaled-WS kernel, ``output_scale`` folded in."""
    if variant == "bf":
        return ScaledStdQuantConv2D(filters, 1, input_quantizer=None,
                                    output_scale=output_scale, name=name)(x)
    y = lq.layers.QuantConv2D(filters, 1, kernel_quantizer="magnitude_aware_sign",
                              kernel_constraint="weight_clip", use_bias=False,
                              kernel_initializer="glorot_normal", name=name)(x)
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
        raise BnnError(f"stem must be 'auto', 'small' or 'imagenet', got {stem!r}")
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
