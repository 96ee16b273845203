"""PIL's image operations as ``tf`` ops, to the level: the ones timm's RandAugment applies.

An image is ``(H, W, 3)`` float32 holding whole numbers in [0, 255] (a uint8 PIL image's
pixels); every function returns whole numbers again, rounded where PIL rounds (mostly by
truncation, with PIL's float32 or float64 arithmetic), so a chain of them stays equal to
the same chain of PIL calls (``tests/test_augment.py`` checks each against timm's op).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorflow as tf

from bnn_keras.data.base import INTERPOLATIONS


def keep_order(value: tf.Tensor) -> tf.Tensor:
    """``value`` as a tensor that graph constant folding does not see through: the folding
    would regroup chains like ``(x / 10) * 30`` into ``x * 3``, or ``x / 10`` into ``x * 0.1``,
    and change the float rounding that the results must share with PIL and timm."""
    value = tf.convert_to_tensor(value, dtype_hint=tf.float64)
    return tf.raw_ops.PlaceholderWithDefault(input=value, shape=[None] * value.shape.rank)


def _truncate(values: tf.Tensor) -> tf.Tensor:
    """PIL's store of a float into a uint8: clipped to [0, 255], then truncated."""
    return tf.floor(tf.clip_by_value(values, 0.0, 255.0))


def blend(degenerate: tf.Tensor, image: tf.Tensor, factor) -> tf.Tensor:
    """``Image.blend(degenerate, image, factor)``: ``degenerate + factor * (image -
    degenerate)`` in float32, clipped and truncated (what every ``ImageEnhance`` class does)."""
    factor = tf.cast(factor, tf.float32)
    return _truncate(degenerate + factor * (image - degenerate))


def luma(image: tf.Tensor) -> tf.Tensor:
    """PIL's RGB -> L, ``(19595 R + 38470 G + 7471 B + 2^15) >> 16``, as ``(H, W, 1)``."""
    rgb = tf.cast(image, tf.int32)
    weighted = rgb[..., 0:1] * 19595 + rgb[..., 1:2] * 38470 + rgb[..., 2:3] * 7471 + 0x8000
    return tf.cast(tf.bitwise.right_shift(weighted, 16), tf.float32)


def color(image: tf.Tensor, factor) -> tf.Tensor:
    """``ImageEnhance.Color``: blend with the grey (L) image."""
    return blend(tf.broadcast_to(luma(image), tf.shape(image)), image, factor)


def contrast(image: tf.Tensor, factor) -> tf.Tensor:
    """``ImageEnhance.Contrast``: blend with the mean of the L image, rounded to a level."""
    mean = tf.reduce_mean(tf.cast(luma(image), tf.float64))
    return blend(tf.fill(tf.shape(image), tf.cast(tf.floor(mean + 0.5), tf.float32)), image,
                 factor)


def brightness(image: tf.Tensor, factor) -> tf.Tensor:
    """``ImageEnhance.Brightness``: blend with black."""
    return blend(tf.zeros_like(image), image, factor)


def smooth(image: tf.Tensor) -> tf.Tensor:
    """``image.filter(ImageFilter.SMOOTH)``: the 3x3 kernel ``[1 1 1; 1 5 1; 1 1 1] / 13`` in
    float32, rounded half up; the border rows and columns are copied unchanged."""
    k1 = tf.constant(1.0, tf.float32) / tf.constant(13.0, tf.float32)
    k5 = tf.constant(5.0, tf.float32) / tf.constant(13.0, tf.float32)

    def row(r, centre):  # one kernel row over the inner columns, in PIL's order
        return (r[:, :-2] * k1 + r[:, 1:-1] * centre) + r[:, 2:] * k1

    middle = image[1:-1]
    total = tf.constant(0.5, tf.float32) + row(image[2:], k1)
    total = total + row(middle, k5)
    total = total + row(image[:-2], k1)
    inner = _truncate(total)
    inner = tf.concat([middle[:, :1], inner, middle[:, -1:]], axis=1)
    return tf.concat([image[:1], inner, image[-1:]], axis=0)


def sharpness(image: tf.Tensor, factor) -> tf.Tensor:
    """``ImageEnhance.Sharpness``: blend with :func:`smooth`."""
    return blend(smooth(image), image, factor)


def autocontrast(image: tf.Tensor) -> tf.Tensor:
    """``ImageOps.autocontrast``: per channel, ``int(x * scale + offset)`` with ``scale =
    255 / (hi - lo)``, ``offset = -lo * scale`` (float64); a flat channel is kept."""
    x = tf.cast(image, tf.float64)
    lo = tf.reduce_min(x, axis=[0, 1], keepdims=True)
    hi = tf.reduce_max(x, axis=[0, 1], keepdims=True)
    scale = 255.0 / tf.maximum(hi - lo, 1.0)
    stretched = tf.clip_by_value(tf.cast(tf.cast(x * scale + -lo * scale, tf.int64), tf.float64),
                                 0.0, 255.0)
    return tf.cast(tf.where(hi > lo, stretched, x), tf.float32)


def equalize(image: tf.Tensor) -> tf.Tensor:
    """``ImageOps.equalize``: per channel, the lookup table ``(step // 2 + #pixels below) //
    step`` with ``step = (#pixels - #pixels at the top level) // 255``; kept when step is 0."""
    def channel(c):
        c_int = tf.cast(c, tf.int32)
        hist = tf.math.bincount(tf.reshape(c_int, [-1]), minlength=256, maxlength=256)
        nonzero = tf.boolean_mask(hist, hist > 0)
        step = (tf.reduce_sum(nonzero) - nonzero[-1]) // 255

        def equal():
            below = tf.concat([[0], tf.cumsum(hist)[:-1]], 0)
            lut = tf.clip_by_value((step // 2 + below) // tf.maximum(step, 1), 0, 255)
            return tf.cast(tf.gather(lut, c_int), tf.float32)

        return tf.cond(step > 0, equal, lambda: c)

    return tf.stack([channel(image[..., i]) for i in range(3)], axis=-1)


def invert(image: tf.Tensor) -> tf.Tensor:
    """``ImageOps.invert``."""
    return 255.0 - image


def posterize(image: tf.Tensor, bits) -> tf.Tensor:
    """``ImageOps.posterize``: keep the top ``bits`` bits (0 bits: black, as Pillow <= 10
    computes it; newer Pillow refuses 0); 8 or more keeps the image."""
    shift = 8 - tf.clip_by_value(tf.cast(bits, tf.int32), 0, 8)
    as_int = tf.cast(image, tf.int32)
    return tf.cast(tf.bitwise.left_shift(tf.bitwise.right_shift(as_int, shift), shift),
                   tf.float32)


def solarize(image: tf.Tensor, threshold) -> tf.Tensor:
    """``ImageOps.solarize``: levels at or above ``threshold`` inverted."""
    return tf.where(image < tf.cast(threshold, tf.float32), image, 255.0 - image)


def solarize_add(image: tf.Tensor, add, threshold: float = 128.0) -> tf.Tensor:
    """timm's ``solarize_add``: ``add`` added (clipped at 255) below ``threshold``."""
    added = tf.minimum(image + tf.cast(add, tf.float32), 255.0)
    return tf.where(image < threshold, added, image)


# ----------------------------------------------------------------------- geometry

def _cubic(p0, p1, p2, p3, d):
    """PIL's transform cubic (a = -1) through four samples at offset ``d`` from ``p1``."""
    c1 = p1
    c2 = -p0 + p2
    c3 = 2.0 * (p0 - p1) + p2 - p3
    c4 = -p0 + p1 - p2 + p3
    return c1 + d * (c2 + d * (c3 + d * c4))


def affine(image: tf.Tensor, matrix: Sequence, fill: Sequence[float],
           interpolation: str = "bicubic") -> tf.Tensor:
    """``image.transform(size, Image.AFFINE, matrix, resample, fillcolor=fill)``.

    ``matrix`` ``(a, b, c, d, e, f)`` maps an output pixel centre ``(x + 0.5, y + 0.5)`` to
    the input point ``(a x' + b y' + c, d x' + e y' + f)`` (float64). A point outside the
    input takes ``fill``; one inside is interpolated from its 2x2 (bilinear) or 4x4
    (bicubic) neighbours with the edge pixels repeated, clipped and truncated to a level.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    a, b, c, d, e, f = (tf.cast(v, tf.float64) for v in matrix)
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    hf, wf = tf.cast(h, tf.float64), tf.cast(w, tf.float64)
    ys, xs = tf.meshgrid(tf.range(hf) + 0.5, tf.range(wf) + 0.5, indexing="ij")
    xs, ys = keep_order(xs), keep_order(ys)
    x_in = a * xs + b * ys + c
    y_in = d * xs + e * ys + f
    inside = (x_in >= 0.0) & (x_in < wf) & (y_in >= 0.0) & (y_in < hf)
    x_in, y_in = x_in - 0.5, y_in - 0.5
    x0, y0 = tf.floor(x_in), tf.floor(y_in)
    dx, dy = (x_in - x0)[..., None], (y_in - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    taps = tf.range(2) if interpolation == "bilinear" else tf.range(-1, 3)
    rows = tf.clip_by_value(y0[..., None] + taps, 0, h - 1)  # (H, W, taps)
    cols = tf.clip_by_value(x0[..., None] + taps, 0, w - 1)
    # one gather of every output pixel's neighbourhood: (H, W, taps, taps, 3)
    block = tf.gather(tf.reshape(tf.cast(image, tf.float32), [-1, 3]),
                      rows[..., :, None] * w + cols[..., None, :])
    block = tf.cast(block, tf.float64)
    dx = dx[..., None, :]  # along each row of the block, then dy down the rows
    if interpolation == "bilinear":
        left, right = block[..., 0, :], block[..., 1, :]
        across = left + (right - left) * dx
        value = across[..., 0, :] + (across[..., 1, :] - across[..., 0, :]) * dy
    else:
        across = _cubic(*(block[..., k, :] for k in range(4)), dx)
        value = _cubic(*(across[..., k, :] for k in range(4)), dy)
    value = tf.cast(tf.floor(tf.clip_by_value(value, 0.0, 255.0)), tf.float32)
    fill = tf.constant(fill, tf.float32, shape=[3])
    return tf.where(inside[..., None], value, fill)


def rotate(image: tf.Tensor, degrees, fill: Sequence[float],
           interpolation: str = "bicubic") -> tf.Tensor:
    """``image.rotate(degrees, resample, fillcolor=fill)``: counter-clockwise about the
    centre ``(W / 2, H / 2)``, the matrix entries rounded to 15 decimals as PIL does."""
    degrees = tf.math.floormod(tf.cast(degrees, tf.float64), 360.0)
    angle = -degrees * (math.pi / 180.0)

    def round15(v):
        return tf.round(v * 1e15) / keep_order(1e15)

    cos, sin = round15(tf.cos(angle)), round15(tf.sin(angle))
    cx = tf.cast(tf.shape(image)[1], tf.float64) / 2.0
    cy = tf.cast(tf.shape(image)[0], tf.float64) / 2.0
    c = cos * -cx + sin * -cy + cx
    f = -sin * -cx + cos * -cy + cy
    rotated = affine(image, (cos, sin, c, -sin, cos, f), fill, interpolation)
    return tf.cond(tf.equal(degrees, 0.0), lambda: image, lambda: rotated)


def shear_x(image: tf.Tensor, factor, fill: Sequence[float],
            interpolation: str = "bicubic") -> tf.Tensor:
    """timm's ``shear_x``: the affine ``(1, factor, 0, 0, 1, 0)``."""
    return affine(image, (1.0, factor, 0.0, 0.0, 1.0, 0.0), fill, interpolation)


def shear_y(image: tf.Tensor, factor, fill: Sequence[float],
            interpolation: str = "bicubic") -> tf.Tensor:
    """timm's ``shear_y``: the affine ``(1, 0, 0, factor, 1, 0)``."""
    return affine(image, (1.0, 0.0, 0.0, factor, 1.0, 0.0), fill, interpolation)


def translate_x(image: tf.Tensor, fraction, fill: Sequence[float],
                interpolation: str = "bicubic") -> tf.Tensor:
    """timm's ``translate_x_rel``: the content moves left by ``fraction`` of the width."""
    pixels = tf.cast(fraction, tf.float64) * tf.cast(tf.shape(image)[1], tf.float64)
    return affine(image, (1.0, 0.0, pixels, 0.0, 1.0, 0.0), fill, interpolation)


def translate_y(image: tf.Tensor, fraction, fill: Sequence[float],
                interpolation: str = "bicubic") -> tf.Tensor:
    """timm's ``translate_y_rel``: the content moves up by ``fraction`` of the height."""
    pixels = tf.cast(fraction, tf.float64) * tf.cast(tf.shape(image)[0], tf.float64)
    return affine(image, (1.0, 0.0, 0.0, 0.0, 1.0, pixels), fill, interpolation)
