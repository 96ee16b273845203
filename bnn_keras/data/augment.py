r"""Image augmentation and normalisation as ``tf`` ops (usable inside ``tf.data.map``).

Every function takes a single image ``(H, W, C)``; pixel values are float32 in
``[0, 255]`` until :func:`normalize` maps them to
\(x' = (x / 255 - \mu) / \sigma\) with the dataset's per-channel mean and std.

* :func:`pad_crop_flip` - CIFAR training: pad 4 pixels (zeros), random crop, random flip.
* :func:`random_resized_crop` - ImageNet training: a crop of 8%-100% of the area with
  aspect ratio in [3/4, 4/3], resized to ``size``, then a random flip
  (``torchvision.transforms.RandomResizedCrop`` semantics, with its fallback to a centre
  crop after 10 failed draws).
* :func:`resize_center_crop` - ImageNet evaluation: shorter side to 256, centre 224 (or
  timm's ``int(size / crop_pct)`` with bicubic resizing, BNext's evaluation).
* :func:`lighting` - AlexNet's PCA colour noise as ReActNet, BNN_NoBN and Bi-Real Net apply
  it (``Lighting(0.1)`` on the uint8 crop).
* :func:`rand_augment` - RandAugment as timm's ``rand-m7-mstd0.5-inc1`` that BNext trains
  with (:mod:`bnn_keras.data.randaugment`, which says why it is not tf-models-official's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from bnn_keras.data.base import INTERPOLATIONS
from bnn_keras.data.options import DEFAULT_CROP_PCT
from bnn_keras.data.randaugment import RAND_AUGMENT_OPS, rand_augment

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

#: AlexNet's ImageNet RGB PCA (pixels on the [0, 1] scale), as the official ``imagenet_pca``
#: of ReActNet (utils/utils.py:19-26), BNN_NoBN (dataset.py:11-18), Bi-Real Net
#: (pytorch_implementation/BiReal18_34/utils.py:19-26): eigenvalues and eigenvectors
#: (the columns of ``IMAGENET_PCA_EIGVEC``).
IMAGENET_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                       (-0.5808, -0.0045, -0.8140),
                       (-0.5836, -0.6948, 0.4203))


def normalize(image: tf.Tensor, mean: Sequence[float], std: Sequence[float]) -> tf.Tensor:
    r"""\(x' = (x / 255 - \mu) / \sigma\) per channel; ``image`` in ``[0, 255]``."""
    image = tf.cast(image, tf.float32) / 255.0
    return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def pad_crop_flip(image: tf.Tensor, padding: int = 4, seed: int | None = None) -> tf.Tensor:
    """Zero-pad by ``padding`` on every side, crop back to the input size, flip left-right
    with probability 0.5 (the CIFAR recipe)."""
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    cropped = tf.image.random_crop(padded, shape, seed=seed)
    return tf.image.random_flip_left_right(cropped, seed=seed)


def random_resized_crop(image: tf.Tensor, size: int, scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        flip: bool = True) -> tf.Tensor:
    """A random crop covering ``scale`` of the area with aspect ratio in ``ratio`` (log-
    uniform), resized (bilinear) to ``size x size``, then a random horizontal flip.

    Like torchvision, 10 draws are tried; if none fits, the largest centre crop with the
    aspect ratio clipped to ``ratio`` is used.
    """
    image = tf.convert_to_tensor(image)
    height = tf.cast(tf.shape(image)[0], tf.float32)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))

    def draw(_):
        target = area * tf.random.uniform([], scale[0], scale[1])
        aspect = tf.exp(tf.random.uniform([], log_ratio[0], log_ratio[1]))
        w = tf.round(tf.sqrt(target * aspect))
        h = tf.round(tf.sqrt(target / aspect))
        return tf.stack([h, w])

    candidates = tf.map_fn(draw, tf.range(10), fn_output_signature=tf.float32)
    fits = (candidates[:, 0] > 0) & (candidates[:, 0] <= height) & \
           (candidates[:, 1] > 0) & (candidates[:, 1] <= width)
    # fallback: centre crop, aspect clipped into `ratio`
    in_ratio = width / height
    fb_w = tf.where(in_ratio < ratio[0], width,
                    tf.where(in_ratio > ratio[1], tf.round(height * ratio[1]), width))
    fb_h = tf.where(in_ratio < ratio[0], tf.round(width / ratio[0]), height)
    first = tf.argmax(tf.cast(fits, tf.int32))
    h, w = tf.cond(tf.reduce_any(fits), lambda: (candidates[first, 0], candidates[first, 1]),
                   lambda: (fb_h, fb_w))
    use_random = tf.reduce_any(fits)
    top = tf.where(use_random, tf.floor(tf.random.uniform([], 0.0, 1.0) * (height - h + 1)),
                   tf.floor((height - h) / 2))
    left = tf.where(use_random, tf.floor(tf.random.uniform([], 0.0, 1.0) * (width - w + 1)),
                    tf.floor((width - w) / 2))
    crop = tf.image.crop_to_bounding_box(image, tf.cast(top, tf.int32), tf.cast(left, tf.int32),
                                         tf.cast(h, tf.int32), tf.cast(w, tf.int32))
    out = tf.image.resize(tf.cast(crop, tf.float32), (size, size), method="bilinear")
    out = tf.clip_by_value(out, 0.0, 255.0)
    return tf.image.random_flip_left_right(out) if flip else out


def eval_resize_size(size: int, crop_pct: float = DEFAULT_CROP_PCT) -> int:
    """The shorter side before the centre crop: ``int(size / crop_pct)`` (timm's rule;
    256 for 224 at the default 0.875, BNext's 235 at 0.95)."""
    return int(math.floor(size / crop_pct))


def to_uint8(image: tf.Tensor) -> tf.Tensor:
    """``image`` rounded and clipped to uint8: the pixels as a PIL image holds them, which
    is what the official transforms between a crop and ``ToTensor`` work on."""
    image = tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 255.0)
    return tf.cast(tf.round(image), tf.uint8)


def lighting(image: tf.Tensor, alphastd: float = 0.1, alpha: tf.Tensor | None = None,
             eigval: Sequence[float] = IMAGENET_PCA_EIGVAL,
             eigvec: Sequence[Sequence[float]] = IMAGENET_PCA_EIGVEC) -> tf.Tensor:
    r"""AlexNet's PCA colour noise, as the official ``Lighting(alphastd)`` class computes it
    (ReActNet utils/utils.py:29-53, BNN_NoBN dataset.py:20-44, Bi-Real Net
    BiReal18_34/utils.py:29-53): every pixel gets the same increment

    \(x' = x + V (\alpha \odot \lambda)\), \(\alpha \sim N(0, \mathrm{alphastd}^2 I_3)\)
    drawn once per image (as float32), \(\lambda\) = ``eigval``, the columns of
    \(V\) = ``eigvec``.

    The result keeps the input's dtype, as in the official class: a uint8 image (the
    official pipelines apply it to the uint8 PIL crop, before ``ToTensor``) is clipped to
    [0, 255] and truncated toward zero (numpy's ``astype``). Since the eigenvalues are on
    the [0, 1] scale, the increment is about 0.01 of a level there, so on uint8 images
    ``Lighting(0.1)`` lowers each channel by one level where its increment is negative
    (pixels at 0 stay 0) and leaves it where it is positive: that is what the official
    training does and what this reproduces. A float image gets ``x + inc`` clipped to
    [0, 255] (the official class only ever sees uint8 images).

    Args:
        image: ``(H, W, 3)`` RGB, uint8 or float in [0, 255].
        alphastd: the standard deviation of the three draws; 0 returns ``image``.
        alpha: the three draws themselves (tests feed the official class's draws); None
            draws them with ``tf.random``.
    """
    image = tf.convert_to_tensor(image)
    if alphastd == 0 and alpha is None:
        return image
    if alpha is None:
        alpha = tf.random.normal([3], dtype=tf.float32) * alphastd
    alpha = tf.cast(tf.cast(alpha, tf.float32), tf.float64)  # the official draws are float32
    inc = tf.linalg.matvec(tf.constant(eigvec, tf.float64),
                           alpha * tf.constant(eigval, tf.float64))
    out = tf.clip_by_value(tf.cast(image, tf.float64) + inc, 0.0, 255.0)
    if image.dtype == tf.uint8:
        out = tf.floor(out)
    return tf.cast(out, image.dtype)


def pil_resize(image: tf.Tensor, height: tf.Tensor, width: tf.Tensor,
               method: str = "bicubic") -> tf.Tensor:
    """Resize a uint8 ``(H, W, 3)`` image to ``(height, width)`` with PIL's ``Image.resize``
    (inside ``tf.data`` through ``tf.numpy_function``), returning uint8.

    This is what torchvision's and timm's ``Resize`` do to a PIL image, to the level;
    ``tf.image.resize(method="bicubic", antialias=True)`` is not (up to a few levels apart,
    mostly from PIL's rounding to uint8 between its horizontal and vertical passes). The
    step is a Python call: it holds the GIL and cannot run where the pipeline leaves this
    process (a tf.data service, a remote TPU host).
    """
    from PIL import Image

    resample = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[method]

    def resize(pixels, h, w):
        return np.asarray(Image.fromarray(pixels).resize((int(w), int(h)), resample))

    out = tf.numpy_function(resize, [tf.cast(image, tf.uint8), height, width], tf.uint8,
                            stateful=False)
    return tf.ensure_shape(out, (None, None, 3))


def resize_center_crop(image: tf.Tensor, size: int = 224, resize: int = 256,
                       interpolation: str = "bilinear") -> tf.Tensor:
    """Resize the shorter side to ``resize``, then take the centre ``size`` square
    (ImageNet evaluation), with torchvision's geometry: the longer side becomes
    ``int(resize * long / short)`` and the crop starts at ``round((side - size) / 2)``.

    ``interpolation``: ``bilinear`` resizes with ``tf.image.resize`` (float);
    ``bicubic`` with PIL's bicubic (:func:`pil_resize`), chosen over TF's antialiased
    bicubic because it gives exactly the uint8 values of timm's evaluation transform that
    BNext uses (tested against it) at about the same speed.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    image = tf.convert_to_tensor(image)
    height = tf.cast(tf.shape(image)[0], tf.float64)
    width = tf.cast(tf.shape(image)[1], tf.float64)
    short = tf.minimum(height, width)
    target = tf.constant(resize, tf.float64)
    new_h = tf.where(height <= width, target, tf.floor(target * height / short))
    new_w = tf.where(height <= width, tf.floor(target * width / short), target)
    new_h = tf.maximum(tf.cast(new_h, tf.int32), size)
    new_w = tf.maximum(tf.cast(new_w, tf.int32), size)
    if interpolation == "bicubic":
        image = tf.cast(pil_resize(to_uint8(image), new_h, new_w, "bicubic"), tf.float32)
    else:
        image = tf.image.resize(tf.cast(image, tf.float32), tf.stack([new_h, new_w]),
                                method="bilinear")
    top = tf.cast(tf.round(tf.cast(new_h - size, tf.float64) / 2), tf.int32)  # half to even,
    left = tf.cast(tf.round(tf.cast(new_w - size, tf.float64) / 2), tf.int32)  # as Python's
    image = tf.image.crop_to_bounding_box(image, top, left, size, size)
    return tf.clip_by_value(image, 0.0, 255.0)


__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "CIFAR100_MEAN", "CIFAR100_STD", "DEFAULT_CROP_PCT",
           "IMAGENET_MEAN", "IMAGENET_PCA_EIGVAL", "IMAGENET_PCA_EIGVEC", "IMAGENET_STD",
           "INTERPOLATIONS", "RAND_AUGMENT_OPS", "eval_resize_size", "lighting", "normalize",
           "pad_crop_flip", "pil_resize", "rand_augment", "random_resized_crop",
           "resize_center_crop", "to_uint8"]
