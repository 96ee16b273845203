"""Pieces shared by the model families: their options, per-variant conv factories, stems
and heads (the BN-free variance schedule: :mod:`~bnn_keras.models.variance`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import larq as lq
import tensorflow as tf
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.layers import Rotate180, ScaledStdConv2D, ScaledStdQuantConv2D
from bnn_keras.models.registry import ModelOptions
from bnn_keras.quantizers import ScaledSign

VARIANTS_BN_BF_NONE = ("bf", "bn", "none")
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
#: ``"torch"``: stride-2 layers pad as the official PyTorch code does (the input is
#: rotated by 180 degrees, see :class:`~bnn_keras.layers.Rotate180`); ``"tf"``: as
#: TensorFlow's ``"same"`` does, one row and column later.
ALIGNS = ("torch", "tf")


#: ``"torch"``: the official code's initialisation (PyTorch's defaults, binary latent
#: weights ``rand * 0.001``); ``"keras"``: Keras's He and Glorot initialisers (each
#: factory below names its own).
INITS = ("torch", "keras")


def check_conventions(align: str, binary_pad: float, init: str = "torch") -> None:
    """Raise :class:`BnnError` unless ``align`` is in :data:`ALIGNS` and ``binary_pad`` is
    0 (PyTorch's zero padding of the binarised input, the official nets) or 1 (+1 padding,
    which LCE computes without its padding correction)."""
    if align not in ALIGNS:
        raise BnnError(f"align must be one of {', '.join(ALIGNS)}, got {align!r}")
    if binary_pad not in (0.0, 1.0):
        raise BnnError(f"binary_pad must be 0 or 1, got {binary_pad!r}")
    if init not in INITS:
        raise BnnError(f"init must be one of {', '.join(INITS)}, got {init!r}")


def torch_default(fan_in: int | None = None):
    """PyTorch's default for ``nn.Conv2d`` / ``nn.Linear`` weights,
    ``kaiming_uniform_(a=sqrt(5))``: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); with ``fan_in``,
    the same bound for their biases."""
    if fan_in is None:
        return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
    bound = fan_in**-0.5
    return keras.initializers.RandomUniform(-bound, bound)


def binary_initializer(init: str, keras_default="glorot_normal", torch_default_=None):
    """Latent weights of a binary conv: ReActNet's / Bi-Real's / BNN_NoBN's
    ``torch.rand(shape) * 0.001`` unless ``torch_default_`` says otherwise (BNext:
    ``randn * 0.001``); Keras's ``keras_default`` with ``init="keras"``."""
    if init == "keras":
        return keras_default
    return torch_default_ or keras.initializers.RandomUniform(0.0, 1e-3)


def quiet_larq(build):
    """Call ``build()`` with larq's "binary weight quantizer without kernel_constraint"
    warning off: the official binary convs have no weight clip."""
    log = logging.getLogger("larq.layers_base")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return build()
    finally:
        log.setLevel(level)


#: where a BN-free block's RPReLU sits: on the residual stream after the add (the
#: official code) or inside the branch, before the add.
RPRELU_PLACES = ("stream", "branch")


STEMS = ("auto", "small", "imagenet")
#: the largest BN-free branch scale ``|alpha|`` (the papers use 0.2): the variance
#: schedule sums ``alpha**2`` over the units, which must stay a finite float
MAX_ALPHA = 1e6


@dataclass(frozen=True)
class NetOptions(ModelOptions):
    """What every family built here can vary; the defaults build the official networks.

    ``stem``: ``"imagenet"``, ``"small"`` or ``"auto"`` (:func:`resolve_stem`);
    ``alpha``: the BN-free residual branch scale; ``align``, ``binary_pad`` and ``init``:
    :func:`check_conventions`. A family adds its own fields in a subclass (registered
    with it, see :func:`bnn_keras.models.register`), and ``create(name, ...)``'s keyword
    options (``--model-option KEY=VALUE``) are its fields.
    """

    stem: str = "auto"
    alpha: float = 0.2
    align: str = "torch"
    binary_pad: float = 0.0
    init: str = "torch"

    def check(self, variant: str) -> None:
        """Raise :class:`BnnError` unless the options make a network of ``variant``."""
        super().check(variant)
        check_conventions(self.align, self.binary_pad, self.init)
        if not abs(self.alpha) <= MAX_ALPHA:
            raise BnnError(f"alpha must be in the range [-{MAX_ALPHA:g}, {MAX_ALPHA:g}], "
                           f"got {self.alpha!r}")
        if self.stem not in STEMS:
            raise BnnError(f"stem must be 'auto', 'small' or 'imagenet', got {self.stem!r}")


@dataclass(frozen=True)
class BfOptions(NetOptions):
    """:class:`NetOptions` and the two options of a ReActNet's BN-free variant:
    ``rprelu`` (:data:`RPRELU_PLACES`: ``"branch"`` puts each RPReLU inside its residual
    branch, before the add) and ``pool_gain`` (a pooled transition shortcut's gain
    doubled, undoing the pool's variance reduction)."""

    rprelu: str = "stream"
    pool_gain: bool = False

    def check(self, variant: str) -> None:
        super().check(variant)
        if self.rprelu not in RPRELU_PLACES:
            raise BnnError(f"rprelu must be one of {', '.join(RPRELU_PLACES)}, "
                           f"got {self.rprelu!r}")
        if variant != "bf" and (self.rprelu != "stream" or self.pool_gain):
            raise BnnError("rprelu and pool_gain are options of the bf variant")


def network_input(input_shape: tuple[int, int, int], align: str
                  ) -> tuple[tf.Tensor, tf.Tensor]:
    """The model's input and the tensor the stem reads: the input rotated by 180 degrees
    when ``align == "torch"``."""
    inputs = keras.Input(input_shape, name="image")
    return inputs, (Rotate180(name="rotate180")(inputs) if align == "torch" else inputs)


def start_network(input_shape: tuple[int, int, int], options: NetOptions, variant: str,
                  ) -> tuple[tf.Tensor, tf.Tensor, str]:
    """Check ``options`` for ``variant``, resolve the stem (:func:`resolve_stem`) and make
    the input: ``(inputs, stem input, stem)``."""
    options.check(variant)
    stem = resolve_stem(options.stem, input_shape)
    return (*network_input(input_shape, options.align), stem)


def finish_network(inputs: tf.Tensor, x: tf.Tensor, num_classes: int, options: NetOptions,
                   variant: str, name: str) -> keras.Model:
    """The end :func:`start_network`'s builders share: the classifier head on ``x``
    (normalizer-free in ``bf``) and the model ``{name}_{variant}`` from ``inputs``."""
    outputs = classifier_head(x, num_classes, normalizer_free=variant == "bf",
                              init=options.init)
    return keras.Model(inputs, outputs, name=f"{name}_{variant}")


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
                input_quantizer="bnn_keras>ApproxSign", init: str = "torch") -> tf.Tensor:
    """A binary conv (both operands binarised) that LCE lowers to ``LceBconv2d``.

    ``bf``: :class:`ScaledStdQuantConv2D` with ``output_scale`` folded in; ``bn`` /
    ``none``: larq's ``QuantConv2D`` with ReActNet's / Bi-Real's ``HardBinaryConv``
    kernel (:class:`~bnn_keras.quantizers.ScaledSign`, no weight clip) and
    ``output_scale`` applied as a multiply (it is 1 there). ``pad_value`` is what "same"
    padding puts around the binarised input: 0 as ``F.conv2d(sign(x), padding=1)`` in the
    official code, or +1.
    """
    common = dict(strides=strides, padding="same", pad_values=float(pad_value),
                  use_bias=False, input_quantizer=input_quantizer, name=name)
    if variant == "bf":
        return ScaledStdQuantConv2D(
            filters, kernel_size, output_scale=output_scale,
            kernel_initializer=binary_initializer(init, "he_normal"), **common)(x)
    y = quiet_larq(lambda: lq.layers.QuantConv2D(
        filters, kernel_size, kernel_quantizer=ScaledSign(),
        kernel_initializer=binary_initializer(init), **common))(x)
    if output_scale != 1.0:
        y = keras.layers.Rescaling(output_scale, name=f"{name}_scale")(y)
    return y


def binary_weight_conv(x: tf.Tensor, filters: int, *, variant: str, name: str,
                       output_scale: float = 1.0, init: str = "torch") -> tf.Tensor:
    """A 1x1 conv with a binary kernel on a real-valued input (BNN_NoBN's downsample
    ``binaryconv1x1``): a float conv in LCE, with +-1 times one magnitude per output
    channel as its kernel. ``bf``: scaled-WS kernel, ``output_scale`` folded in."""
    if variant == "bf":
        return ScaledStdQuantConv2D(
            filters, 1, input_quantizer=None, output_scale=output_scale,
            kernel_initializer=binary_initializer(init, "he_normal"), name=name)(x)
    y = quiet_larq(lambda: lq.layers.QuantConv2D(
        filters, 1, kernel_quantizer=ScaledSign(), use_bias=False,
        kernel_initializer=binary_initializer(init), name=name))(x)
    if output_scale != 1.0:
        y = keras.layers.Rescaling(output_scale, name=f"{name}_scale")(y)
    return y


def real_conv(x: tf.Tensor, filters: int, kernel_size: int, *, strides: int = 1,
              variant: str, name: str, output_scale: float = 1.0,
              init: str = "torch") -> tf.Tensor:
    """A real-valued conv: weight-standardised in ``bf``, plain ``Conv2D`` otherwise."""
    initializer = "he_normal" if init == "keras" else torch_default()
    if variant == "bf":
        return ScaledStdConv2D(filters, kernel_size, strides=strides, padding="same",
                               output_scale=output_scale, kernel_initializer=initializer,
                               name=name)(x)
    y = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                            use_bias=False, kernel_initializer=initializer, name=name)(x)
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


def resnet_stem(inputs: tf.Tensor, filters: int, stem: str, variant: str,
                init: str = "torch") -> tf.Tensor:
    """The ResNet stem: 7x7 stride-2 conv + 3x3 stride-2 max-pool (``"imagenet"``) or a
    3x3 stride-1 conv (``"small"``), with BN after the conv in the ``bn`` variant."""
    if stem == "imagenet":
        x = real_conv(inputs, filters, 7, strides=2, variant=variant, name="stem_conv",
                      init=init)
        x = batch_norm(x, variant, "stem_bn")
        return keras.layers.MaxPool2D(3, strides=2, padding="same", name="stem_pool")(x)
    x = real_conv(inputs, filters, 3, variant=variant, name="stem_conv", init=init)
    return batch_norm(x, variant, "stem_bn")


def classifier_head(x: tf.Tensor, num_classes: int, *, normalizer_free: bool = False,
                    init: str = "torch") -> tf.Tensor:
    """Global average pool then a float ``Dense`` named ``classifier`` (logits).

    ``init="torch"``: ``nn.Linear``'s initialisation. ``init="keras"``: Glorot, or with
    ``normalizer_free`` a kernel from N(0, 0.01) as the NF-ResNets and NFNets start
    theirs (Brock et al. 2021): without normalisation the pooled features of a BN-free
    net grow with depth, and a Glorot kernel starts it with a loss far above
    log(classes).
    """
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    fan_in = int(x.shape[-1])
    if init == "torch":
        kernel, bias = torch_default(), torch_default(fan_in)
    else:
        kernel = (keras.initializers.RandomNormal(0.0, 0.01) if normalizer_free
                  else "glorot_uniform")
        bias = "zeros"
    return keras.layers.Dense(num_classes, kernel_initializer=kernel, bias_initializer=bias,
                              name="classifier")(x)
