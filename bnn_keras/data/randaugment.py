"""RandAugment (Cubuk et al. 2020) as timm's ``rand_augment_transform`` applies it, in ``tf``.

BNext trains with timm 0.6.11's ``rand-m7-mstd0.5-inc1`` (``--aa`` in its
``src/train_assistant_group_amp.py``), through ``create_transform`` with bicubic
interpolation and the ImageNet mean as the fill colour: per image, 2 ops drawn uniformly
with replacement from timm's "increasing" set, each applied with probability 0.5 at a
magnitude drawn from ``N(7, 0.5)`` clipped to [0, 10]. :func:`rand_augment` does the same
with these defaults, on the PIL operations of :mod:`bnn_keras.data.pil_ops`.

Each op maps ``(image, level)`` to an image; the level in [0, 10] becomes the op's argument
as timm's ``LEVEL_TO_ARG`` computes it (float64), with a random sign for the signed ops
(``negate`` fixes it).

tf-models-official 2.19.1 installs beside our pins (with some 50 more packages), but its
``RandAugment`` is not timm's: its enhance, posterize and solarize ops do not grow with the
magnitude (no sign either), it translates by absolute pixels, adds Cutout and an identity
choice, applies every drawn op, adds N(0, 1) noise to the magnitude whatever the std, and
samples the nearest pixel with reflected borders instead of bicubic with a fill colour.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import tensorflow as tf

from bnn_keras.data import pil_ops

MAX_LEVEL = 10.0
#: timm's fill for the geometric ops under ``create_transform``: ``round(255 * mean)`` of the
#: ImageNet mean, which BNext normalises with (for every dataset).
BNEXT_FILL = (124, 116, 104)
DEFAULT_INTERPOLATION = "bicubic"  # BNext's --train-interpolation


def _fraction(level):
    return pil_ops.keep_order(tf.cast(level, tf.float64) / pil_ops.keep_order(MAX_LEVEL))


# level -> argument (unsigned), as timm's *_level_to_arg
def _rotate_arg(level):  # degrees
    return _fraction(level) * 30.0


def _shear_arg(level):
    return _fraction(level) * 0.3


def _translate_arg(level):  # of the width or height (timm's translate_pct)
    return _fraction(level) * 0.45


def _enhance_arg(level):  # timm's *Increasing enhance ops: 1 +- this, at least 0.1
    return _fraction(level) * 0.9


def _posterize_arg(level):  # bits kept
    return 4 - tf.cast(tf.floor(_fraction(level) * 4.0), tf.int32)


def _solarize_arg(level):  # threshold
    return 256.0 - tf.floor(_fraction(level) * 256.0)


def _solarize_add_arg(level):
    return tf.floor(_fraction(level) * 110.0)


class _Op(NamedTuple):
    apply: Callable  # (image, argument, fill, interpolation) -> image
    level_to_arg: Callable | None = None  # level -> the argument's size
    signed: bool = False  # a random sign
    enhance: bool = False  # the argument is 1 + the signed size, at least 0.1


def _pixel(op):
    return lambda image, value, fill, interpolation: op(image, value)


def _no_arg(op):
    return lambda image, value, fill, interpolation: op(image)


_OPS = {
    "AutoContrast": _Op(_no_arg(pil_ops.autocontrast)),
    "Equalize": _Op(_no_arg(pil_ops.equalize)),
    "Invert": _Op(_no_arg(pil_ops.invert)),
    "Rotate": _Op(pil_ops.rotate, _rotate_arg, signed=True),
    "PosterizeIncreasing": _Op(_pixel(pil_ops.posterize), _posterize_arg),
    "SolarizeIncreasing": _Op(_pixel(pil_ops.solarize), _solarize_arg),
    "SolarizeAdd": _Op(_pixel(pil_ops.solarize_add), _solarize_add_arg),
    "ColorIncreasing": _Op(_pixel(pil_ops.color), _enhance_arg, True, True),
    "ContrastIncreasing": _Op(_pixel(pil_ops.contrast), _enhance_arg, True, True),
    "BrightnessIncreasing": _Op(_pixel(pil_ops.brightness), _enhance_arg, True, True),
    "SharpnessIncreasing": _Op(_pixel(pil_ops.sharpness), _enhance_arg, True, True),
    "ShearX": _Op(pil_ops.shear_x, _shear_arg, signed=True),
    "ShearY": _Op(pil_ops.shear_y, _shear_arg, signed=True),
    "TranslateXRel": _Op(pil_ops.translate_x, _translate_arg, signed=True),
    "TranslateYRel": _Op(pil_ops.translate_y, _translate_arg, signed=True),
}


def level_to_arg(name: str, level, negate=None) -> tf.Tensor | None:
    """The argument timm's op ``name`` gets at ``level`` (None for the ops without one);
    a signed op's is negated where ``negate`` is true (None: with probability 0.5)."""
    op = _OPS[name]
    if op.level_to_arg is None:
        return None
    value = op.level_to_arg(level)
    if op.signed:
        if negate is None:
            negate = tf.random.uniform([]) < 0.5
        value = tf.where(negate, -value, value)
    return pil_ops.keep_order(tf.maximum(1.0 + value, 0.1) if op.enhance else value)


def apply_op(name: str, image: tf.Tensor, level, negate=None,
             fill: Sequence[float] = BNEXT_FILL,
             interpolation: str = DEFAULT_INTERPOLATION) -> tf.Tensor:
    """timm's RandAugment op ``name`` at ``level`` on ``image`` (whole numbers in [0, 255],
    float32); ``fill`` and ``interpolation`` are used by the geometric ops."""
    return _OPS[name].apply(image, level_to_arg(name, level, negate), fill, interpolation)


RAND_AUGMENT_OPS = {name: functools.partial(apply_op, name) for name in _OPS}
"""timm's ``_RAND_INCREASING_TRANSFORMS`` (the ``inc1`` set), by name: ``op(image, level,
negate=None, fill=BNEXT_FILL, interpolation="bicubic")``."""


def rand_augment(image: tf.Tensor, num_layers: int = 2, magnitude: float = 7.0,
                 magnitude_std: float = 0.5, prob: float = 0.5,
                 ops: Sequence[str] | None = None, fill: Sequence[float] = BNEXT_FILL,
                 interpolation: str = DEFAULT_INTERPOLATION) -> tf.Tensor:
    """RandAugment: ``num_layers`` ops drawn uniformly (with replacement), each applied with
    probability ``prob`` at a level ``~ N(magnitude, magnitude_std)`` clipped to
    ``[0, 10]``. ``image`` is ``(H, W, 3)`` in ``[0, 255]``, rounded to whole levels first
    (timm works on uint8 PIL images); the result has the same shape (float32, whole levels).
    ``fill`` (RGB) and ``interpolation`` (``bicubic`` or ``bilinear``) are for the geometric
    ops; bilinear costs about a quarter of bicubic's time.

    Example:
        ```python
        ds = ds.map(lambda x, y: (rand_augment(x, 2, 7.0, 0.5), y))
        ```
    """
    names = list(ops or RAND_AUGMENT_OPS)
    image = tf.round(tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 255.0))
    static_shape = image.shape
    for _ in range(num_layers):
        index = tf.random.uniform([], 0, len(names), dtype=tf.int32)
        if magnitude_std > 0:
            level = tf.clip_by_value(magnitude + magnitude_std * tf.random.normal([]), 0.0,
                                     MAX_LEVEL)
        else:
            level = tf.constant(min(max(float(magnitude), 0.0), MAX_LEVEL))
        branches = [functools.partial(apply_op, n, image, level, fill=fill,
                                      interpolation=interpolation) for n in names]
        image = tf.cond(tf.random.uniform([]) < prob,
                        lambda i=index, b=branches: tf.switch_case(i, b), lambda i=image: i)
        image = tf.ensure_shape(image, static_shape)
    return image
