"""BNext (Guo et al., "Towards Optimization-Friendly Binary Neural Network", TMLR 2023).

``bnext_tiny``, ``bnext_small``, ``bnext_middle`` and ``bnext_large``: a MobileNet-V1 /
ReActNet-A layout (see :data:`CONFIGS`). A real 3x3 stem conv (stride 2, or 1 with the
``small`` stem) and BN, then blocks of one 3x3 module and one 1x1 module, or two 1x1
modules concatenated when a block doubles its channels. The first block whose width
changes after block 1 in each stage has stride 2 (its shortcuts are 2x2 average pools).
Head: PReLU, global pool, classifier.

Every module maps ``x`` (``C`` channels) to ``C`` channels::

    h = PReLU(BN1(bconv(sign(x + b))))                     # the binary "processor"
    m = s * u + (1 - s) * h                                 # Info-Recoupling, s in [0, 1]
    h = h * SE(m)                                           # SE gate C -> C/8 -> C, sigmoid
    FFN module:            y = BN2(h) + u
    ELM-Attention module:  r = PReLU'(x) (pooled);  y = BN2(h * r) + r

``u`` is ``x``, 2x2-average-pooled at stride 2. ELM-Attention replaces the FFN form in
the 3x3 module of every even block (1-based) and of every stride-2 block. Activation
signs use a straight-through gradient clipped to ``[-1.5, 1.5]``
(``SteSign(clip_value=1.5)``); the ``bn`` weights are BNext's ``HardBinaryConv``
(:class:`~bnn_keras.quantizers.TemperatureSign`: ``sign(W)`` once its temperature is
under 1e-7, as built here; ``clip(W / T, -1, 1)`` while a training recipe decays it;
latent weights clipped to 1.5, an identity straight-through gradient).

Variants:
    ``bn``  the paper's model.
    ``bf``  BN-free, in the spirit of :mod:`bnn_keras.models.reactnet_resnet`'s ``bf``:
            a scaled-WS stem and scaled-WS binary convs (their gain replaces BN1), no BN2,
            and each module in the NF form ``y = u' + alpha * g(beta * x)`` with
            ``alpha = 0.2`` (folded into the SE gate) and ``beta = 1/sqrt(Var)`` (folded
            into the bias before the sign and into the recoupling mix). The ELM module
            keeps the identity shortcut (``u' = u``) and uses ``PReLU'(beta * x)`` only as
            the multiplier (``beta`` folded into the gate too). The expected variance
            grows by ``alpha**2`` per module and is reset to 1 at each stride-2 block
            (:func:`~bnn_keras.models.variance.variance_schedule`),
            whose pooled shortcut is scaled by ``strides * beta`` (as in
            ``reactnet_resnet``: pooling divides the variance of uncorrelated features
            by ``strides**2``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import larq as lq
import tensorflow as tf
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.layers import ChannelGate, LearnableBias, RecouplingMix, ScaledStdQuantConv2D
from bnn_keras.models.common import (
    BN_EPSILON,
    BN_MOMENTUM,
    NetOptions,
    avg_pool,
    binary_initializer,
    finish_network,
    real_conv,
    start_network,
    torch_default,
)
from bnn_keras.models.registry import register
from bnn_keras.models.variance import variance_schedule
from bnn_keras.quantizers import BINARY_TEMPERATURE, TemperatureSign

VARIANTS = ("bn", "bf")
SIGN_CLIP = 1.5
SE_RATIO = 8
PAPER = 'BNext (Guo et al., "Towards Optimization-Friendly Binary Neural Network", TMLR 2023)'


@dataclass(frozen=True)
class BNextConfig:
    """Stem width and the output width of each block (a width change means stride 2,
    except for block 1)."""

    stem: int
    blocks: tuple[int, ...]


def _widths(base: int, repeats: Sequence[int]) -> tuple[int, ...]:
    out: list[int] = [2 * base]
    for i, n in enumerate(repeats):
        out += [base * 2 ** (i + 2)] * n
    return tuple(out)


#: tiny: ReActNet-A's widths; small: 1.5x wider; middle: 21 blocks; large: 29 blocks.
CONFIGS: dict[str, BNextConfig] = {
    "tiny": BNextConfig(32, _widths(32, (2, 2, 6, 2))),
    "small": BNextConfig(48, _widths(48, (2, 2, 6, 2))),
    "middle": BNextConfig(48, _widths(48, (4, 4, 8, 4))),
    "large": BNextConfig(64, _widths(64, (4, 4, 16, 4))),
}


def _prelu(x: tf.Tensor, name: str) -> tf.Tensor:
    """Per-channel PReLU with PyTorch's initial slope 0.25."""
    return keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25),
                              shared_axes=[1, 2], name=name)(x)


def _bn(x: tf.Tensor, name: str) -> tf.Tensor:
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                           name=name)(x)


def _binary_conv(x: tf.Tensor, filters: int, kernel_size: int, strides: int, variant: str,
                 name: str, pad_value: float, init: str) -> tf.Tensor:
    """``bconv(sign(x))`` with BNext's clipped STE on the activations; the kernel is
    BNext's ``HardBinaryConv`` (:class:`~bnn_keras.quantizers.TemperatureSign`, its
    latent weights clipped to [-1.5, 1.5]), scaled-WS in ``bf``."""
    common = dict(strides=strides, padding="same", pad_values=float(pad_value), use_bias=False,
                  input_quantizer=lq.quantizers.SteSign(clip_value=SIGN_CLIP), name=name)
    initializer = binary_initializer(init, "glorot_normal",
                                     keras.initializers.RandomNormal(0.0, 1e-3))
    if variant == "bf":
        return ScaledStdQuantConv2D(filters, kernel_size, kernel_initializer=initializer,
                                    **common)(x)
    return lq.layers.QuantConv2D(
        filters, kernel_size, kernel_quantizer=TemperatureSign(BINARY_TEMPERATURE / 10),
        kernel_constraint=lq.constraints.WeightClip(SIGN_CLIP),
        kernel_initializer=initializer, **common)(x)


def _se_gate(x: tf.Tensor, name: str, init: str) -> tf.Tensor:
    """Squeeze-excitation: global pool, ``C -> C/8`` ReLU, ``-> C`` sigmoid: ``(B,1,1,C)``
    (BNext's 1x1 convs with biases, as ``Dense`` layers)."""
    channels = int(x.shape[-1])
    reduced = max(1, channels // SE_RATIO)

    def dense(units: int, fan_in: int, **kwargs) -> keras.layers.Dense:
        if init == "keras":
            return keras.layers.Dense(units, **kwargs)
        return keras.layers.Dense(units, kernel_initializer=torch_default(),
                                  bias_initializer=torch_default(fan_in), **kwargs)

    g = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
    g = dense(reduced, channels, activation="relu", name=f"{name}_se_reduce")(g)
    return dense(channels, reduced, activation="sigmoid", name=f"{name}_se_expand")(g)


def _pool(x: tf.Tensor, strides: int, name: str) -> tf.Tensor:
    """``x``, or its ``strides x strides`` average pool."""
    return x if strides == 1 else avg_pool(x, strides, name)


def _recoupling_gate(pooled: tf.Tensor, h: tf.Tensor, name: str, init: str,
                     input_scale: float = 1.0) -> tf.Tensor:
    """The SE gate of the Info-Recoupling mix ``s * input_scale * u + (1 - s) * h``."""
    mix = RecouplingMix(input_scale=input_scale, name=f"{name}_mix")([pooled, h])
    return _se_gate(mix, name, init)


def _module_bn(x: tf.Tensor, kernel_size: int, strides: int, *, elm: bool, name: str,
               binary_pad: float, init: str) -> tf.Tensor:
    """One BNext module of the ``bn`` variant, ``C -> C`` channels (see the module
    docstring)."""
    channels = int(x.shape[-1])
    pooled = _pool(x, strides, f"{name}_pool")
    h = LearnableBias(name=f"{name}_move")(x)
    h = _binary_conv(h, channels, kernel_size, strides, "bn", f"{name}_conv", binary_pad,
                     init)
    h = _prelu(_bn(h, f"{name}_bn1"), f"{name}_prelu")
    gate = _recoupling_gate(pooled, h, name, init)
    h = ChannelGate(name=f"{name}_gate")([h, gate])
    shortcut = pooled
    if elm:
        shortcut = _pool(_prelu(x, f"{name}_res_prelu"), strides, f"{name}_res_pool")
        h = keras.layers.Multiply(name=f"{name}_attend")([h, shortcut])
    h = _bn(h, f"{name}_bn2")
    return keras.layers.Add(name=f"{name}_add")([h, shortcut])


def _module_bf(x: tf.Tensor, kernel_size: int, strides: int, *, elm: bool, name: str,
               binary_pad: float, init: str, alpha: float, beta: float) -> tf.Tensor:
    """One BNext module of the ``bf`` variant, ``y = u' + alpha * gate * h`` (times
    ``PReLU'(beta * u)`` for ELM), ``C -> C`` channels (see the module docstring)."""
    channels = int(x.shape[-1])
    pooled = _pool(x, strides, f"{name}_pool")
    # scales the pooled stream to unit variance: an average pool divides the variance of
    # spatially uncorrelated features by strides**2 (as in reactnet_resnet)
    unit = beta * strides
    h = LearnableBias(scale=beta, name=f"{name}_move")(x)
    h = _binary_conv(h, channels, kernel_size, strides, "bf", f"{name}_conv", binary_pad,
                     init)
    h = _prelu(h, f"{name}_prelu")
    gate = _recoupling_gate(pooled, h, name, init, input_scale=unit)
    h = ChannelGate(scale=alpha * unit if elm else alpha, name=f"{name}_gate")([h, gate])
    if elm:
        h = keras.layers.Multiply(name=f"{name}_attend")(
            [h, _prelu(pooled, f"{name}_res_prelu")])
    shortcut = pooled
    if strides != 1:
        shortcut = keras.layers.Rescaling(unit, name=f"{name}_pool_scale")(pooled)
    return keras.layers.Add(name=f"{name}_add")([h, shortcut])


def _module(x: tf.Tensor, kernel_size: int, strides: int, *, variant: str, elm: bool,
            name: str, binary_pad: float, init: str, alpha: float, beta: float) -> tf.Tensor:
    """:func:`_module_bf` in the ``bf`` variant (``alpha``, ``beta`` its NF constants),
    :func:`_module_bn` otherwise."""
    if variant == "bf":
        return _module_bf(x, kernel_size, strides, elm=elm, name=name,
                          binary_pad=binary_pad, init=init, alpha=alpha, beta=beta)
    return _module_bn(x, kernel_size, strides, elm=elm, name=name, binary_pad=binary_pad,
                      init=init)


def _block_strides(config: BNextConfig) -> list[int]:
    """Each block's stride: 2 where its width changes, except for block 1."""
    in_widths = (config.stem, *config.blocks[:-1])
    return [2 if (i > 0 and filters != in_filters) else 1
            for i, (in_filters, filters) in enumerate(zip(in_widths, config.blocks))]


@dataclass(frozen=True)
class BNextOptions(NetOptions):
    """What a BNext network can vary: :class:`~bnn_keras.models.common.NetOptions`
    (``stem="auto"`` takes the stride-2 stem from 112 pixels up; the official code takes
    it for 1000 classes, the other one otherwise)."""


def build_bnext(config: BNextConfig, options: BNextOptions = BNextOptions(), *,
                variant: str, num_classes: int, input_shape: tuple[int, int, int],
                name: str = "bnext") -> keras.Model:
    """Build a BNext network.

    Args:
        config: stem and block widths (one of :data:`CONFIGS`).
        options: what the network varies (:class:`BNextOptions`).
        variant: ``"bn"`` or ``"bf"``.
        num_classes: classifier outputs (logits).
        input_shape: ``(height, width, channels)``.
        name: model name prefix.
    """
    inputs, x, stem = start_network(input_shape, options, variant)
    x = real_conv(x, config.stem, 3, strides=2 if stem == "imagenet" else 1,
                  variant=variant, name="stem_conv", init=options.init)
    if variant != "bf":
        x = _bn(x, "stem_bn")
    all_strides = _block_strides(config)
    # two residual units per block: the 3x3 module (a transition at stride 2), then the
    # 1x1 module(s) (two in parallel, sharing one beta, when the block doubles its width)
    betas = variance_schedule((t for strides in all_strides for t in (strides == 2, False)),
                              options.alpha)
    common = dict(variant=variant, alpha=options.alpha, binary_pad=options.binary_pad,
                  init=options.init)
    for i, (filters, strides) in enumerate(zip(config.blocks, all_strides), start=1):
        in_filters = int(x.shape[-1])
        name_i = f"block{i}"
        x = _module(x, 3, strides, elm=i % 2 == 0 or strides == 2, name=f"{name_i}_3x3",
                    beta=next(betas), **common)
        beta = next(betas)
        if filters == in_filters:
            x = _module(x, 1, 1, elm=False, name=f"{name_i}_1x1", beta=beta, **common)
        elif filters == 2 * in_filters:
            parts = [_module(x, 1, 1, elm=False, name=f"{name_i}_1x1_{j}", beta=beta,
                             **common)
                     for j in (1, 2)]
            x = keras.layers.Concatenate(name=f"{name_i}_concat")(parts)
        else:
            raise BnnError(f"block {i}: {in_filters} -> {filters} channels; BNext blocks "
                           "keep or double their width")
    x = _prelu(x, "head_prelu")
    return finish_network(inputs, x, num_classes, options, variant, name)


def _register(size: str) -> None:
    model_name = f"bnext_{size}"

    paper = f"{PAPER}, BNext-{size[0].upper()}"

    @register(model_name, variants=VARIANTS, family="bnext", paper=paper, options=BNextOptions)
    def builder(variant: str, num_classes: int, input_shape: tuple[int, int, int],
                options: BNextOptions) -> keras.Model:
        return build_bnext(CONFIGS[size], options, variant=variant, num_classes=num_classes,
                           input_shape=input_shape, name=model_name)

    builder.__name__ = model_name
    builder.__doc__ = f"BNext-{size[0].upper()} ({size}) (see :func:`build_bnext`)."


for _size in CONFIGS:
    _register(_size)
