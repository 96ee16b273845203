"""int8 fake quantization: the ranges a quantization-aware model tracks and the ops it
applies, which TensorFlow's and LCE's converters read as int8 quantization parameters.

Activations are quantized per tensor (``FakeQuantWithMinMaxVars``: 8 bits, the range
nudged so that 0 is exact, as TFLite's int8 kernels store it) with a range tracked as an
exponential moving average of the batch minimum and maximum while the network trains
(Jacob et al. 2018, what TensorFlow's own QAT does); weights per output channel,
symmetric and narrow (``[-127, 127]``, TFLite's int8 weight scheme) from their largest
magnitude. A range starts at ``[0, 0]``, "never set": the first training batch (or the
first calibration batch, :mod:`bnn_keras.quantize.calibrate`) sets it.
"""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras

#: Weight of the previous range in each training step's moving average.
EMA_DECAY = 0.99
#: TFLite's fixed int8 output range of ``LOGISTIC`` (scale 1/256, zero point -128).
SIGMOID_RANGE = (0.0, 255.0 / 256.0)
#: The narrowest range kept (a constant tensor would otherwise give a zero scale).
MIN_WIDTH = 1e-6

_VARIABLE = dict(shape=(), initializer="zeros", trainable=False, dtype="float32",
                 synchronization=tf.VariableSynchronization.ON_READ,
                 aggregation=tf.VariableAggregation.MEAN, experimental_autocast=False)


def smart_branch(training, train_fn, infer_fn):
    """``train_fn()`` or ``infer_fn()``: a Python choice when ``training`` is a bool,
    a ``tf.cond`` when it is a tensor (as Keras passes it in some traces)."""
    return tf.__internal__.smart_cond.smart_cond(training, train_fn, infer_fn)


def resolve_training(training):
    """``training``, or Keras's learning phase when it is ``None``."""
    return keras.backend.learning_phase() if training is None else training


def quantize_kernel(kernel: tf.Tensor, per_channel: bool = True) -> tf.Tensor:
    """``kernel`` fake-quantized per output channel (last axis), or per tensor without
    ``per_channel`` (a ``Dense`` kernel: the converter transposes it for
    ``FULLY_CONNECTED`` and refuses a per-channel axis there), symmetric and narrow
    (TFLite's int8 weights). The gradient is straight-through: the range follows the
    kernel, so every value lies inside it.

    Per-channel symmetric quantization commutes with a positive per-channel scale, so
    quantizing a conv's kernel here gives the same integers as the converter's
    quantization of the kernel it folded a batch norm or a rescaling into.
    """
    dtype = kernel.dtype
    k32 = tf.cast(kernel, tf.float32)
    axes = list(range(len(k32.shape) - (1 if per_channel else 0)))
    bound = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(k32), axis=axes), MIN_WIDTH))
    fake_quant = (tf.quantization.fake_quant_with_min_max_vars_per_channel if per_channel
                  else tf.quantization.fake_quant_with_min_max_vars)
    q = fake_quant(k32, -bound, bound, num_bits=8, narrow_range=True)
    return tf.cast(q, dtype)


class RangeOwner:
    """Mixin for a layer holding int8 activation ranges: ``add_range(name)`` creates the
    variables ``<name>_min`` and ``<name>_max``; ``quantize(x, name, training)`` fakes
    int8 on ``x`` with that range (tracking it first when training or calibrating).

    ``range_mode`` (set by :func:`bnn_keras.quantize.calibrate_ranges`, read when the
    call runs eagerly) is ``"calibrate"`` while ranges are measured on float values:
    each batch's minimum and maximum then go into the running means of
    ``calibration_batches`` batches, and nothing is quantized.
    """

    ema_decay: float = EMA_DECAY
    range_mode: str | None = None
    calibration_batches: int = 0

    def add_range(self, name: str) -> None:
        setattr(self, f"{name}_min", self.add_weight(name=f"{name}_min", **_VARIABLE))
        setattr(self, f"{name}_max", self.add_weight(name=f"{name}_max", **_VARIABLE))
        self.range_names = (*getattr(self, "range_names", ()), name)

    def range_variables(self) -> list[tuple[str, tf.Variable, tf.Variable]]:
        """``(name, min, max)`` of every range of the layer."""
        return [(n, getattr(self, f"{n}_min"), getattr(self, f"{n}_max"))
                for n in getattr(self, "range_names", ())]

    def quantize(self, x: tf.Tensor, name: str, training=None) -> tf.Tensor:
        low, high = getattr(self, f"{name}_min"), getattr(self, f"{name}_max")
        x32 = tf.cast(x, tf.float32)
        if self.range_mode == "calibrate":
            _calibrate(x32, low, high, self.calibration_batches)
            return x

        def train():
            new_low, new_high = _track(x32, low, high, self.ema_decay)
            return _fake_quant(x32, new_low, new_high)

        y = smart_branch(resolve_training(training), train,
                         lambda: _fake_quant(x32, low, high))
        return tf.cast(y, x.dtype)


def _batch_range(x32: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The batch's range, widened to hold 0 (int8 keeps 0 exact) and never empty."""
    low = tf.minimum(tf.stop_gradient(tf.reduce_min(x32)), 0.0)
    high = tf.maximum(tf.stop_gradient(tf.reduce_max(x32)), low + MIN_WIDTH)
    return low, high


def snap_range(low: tf.Tensor, high: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The int8 range nearest ``[low, high]`` (``low <= 0 <= high``) whose scale has 12
    significant bits and whose ends are exact multiples of it.

    Why: the converter computes a range's scale in double precision where it is read
    from a fake-quant op and in single precision where it carries it on to an op that
    keeps its input's scale (an average pool); the two differ in the last bits unless
    the scale is exact in both, and it then refuses the pool ("same scale constraint").
    """
    scale = tf.maximum((high - low) / 255.0, MIN_WIDTH / 255.0)
    step = tf.pow(2.0, tf.floor(tf.math.log(scale) / math.log(2.0)) - 11.0)
    scale = tf.round(scale / step) * step
    zero_point = tf.clip_by_value(tf.round(-low / scale), 0.0, 255.0)
    return -zero_point * scale, (255.0 - zero_point) * scale


def _track(x32, low: tf.Variable, high: tf.Variable, decay: float):
    """Move the range towards the batch's (a moving average; the batch's own when the
    range was never set) and return the new values."""
    b_low, b_high = _batch_range(x32)
    fresh = tf.logical_and(tf.equal(low, 0.0), tf.equal(high, 0.0))
    new_low, new_high = snap_range(
        tf.where(fresh, b_low, decay * low + (1.0 - decay) * b_low),
        tf.where(fresh, b_high, decay * high + (1.0 - decay) * b_high))
    low.assign(new_low)
    high.assign(new_high)
    return new_low, new_high


def _calibrate(x32, low: tf.Variable, high: tf.Variable, seen: int) -> None:
    """Running mean of the batch ranges over the ``seen`` batches so far and this one
    (snapped, :func:`snap_range`)."""
    b_low, b_high = _batch_range(x32)
    new_low, new_high = snap_range((low * seen + b_low) / (seen + 1),
                                   (high * seen + b_high) / (seen + 1))
    low.assign(new_low)
    high.assign(new_high)


def _fake_quant(x32, low, high) -> tf.Tensor:
    return tf.quantization.fake_quant_with_min_max_vars(x32, low, high, num_bits=8)


@keras.utils.register_keras_serializable(package="bnn_keras")
class FakeQuant(RangeOwner, keras.layers.Layer):
    """int8 fake quantization of a layer's output, per tensor (see the module's
    docstring). ``fixed_range`` quantizes with that range instead of a tracked one
    (:data:`SIGMOID_RANGE` after a sigmoid, whose int8 output TFLite fixes).

    Example:
        ```python
        y = FakeQuant(name="stem_conv_int8")(keras.layers.Conv2D(32, 3)(x))
        ```
    """

    def __init__(self, fixed_range: tuple[float, float] | None = None,
                 ema_decay: float = EMA_DECAY, **kwargs):
        super().__init__(**kwargs)
        self.fixed_range = tuple(float(v) for v in fixed_range) if fixed_range else None
        self.ema_decay = float(ema_decay)

    def build(self, input_shape):
        if self.fixed_range is None:
            self.add_range("output")
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training=None) -> tf.Tensor:
        if self.fixed_range is None:
            return self.quantize(inputs, "output", training)
        if self.range_mode == "calibrate":
            return inputs
        low, high = self.fixed_range
        y = tf.quantization.fake_quant_with_min_max_args(tf.cast(inputs, tf.float32),
                                                         min=low, max=high, num_bits=8)
        return tf.cast(y, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "fixed_range": self.fixed_range,
                "ema_decay": self.ema_decay}
