"""int8 where the network is not binary: quantization-aware training (QAT) and
post-training calibration of the float part of a BNN, for int8 + 1-bit flatbuffers.

:func:`quantize_model` turns a float network of any registered family into its
quantization-aware copy (:mod:`~bnn_keras.quantize.transform`): int8 fake quantization
(:mod:`~bnn_keras.quantize.ranges`) on every tensor and weight the flatbuffer holds in
int8, through the int8 versions of the layers (:mod:`~bnn_keras.quantize.layers`); the
binary convs are left as they are and still lower to ``LceBconv2d``, which then reads
and writes int8. Train it (``bnn-keras train --quantize int8``) or set its ranges from
data (:func:`calibrate_ranges`), then export it as any model.
"""

from bnn_keras.quantize.calibrate import calibrate_ranges
from bnn_keras.quantize.layers import (
    QatBatchNormalization,
    QatChannelGate,
    QatConv2D,
    QatDense,
    QatLearnableBias,
    QatQuantConv2D,
    QatRecouplingMix,
    QatRPReLU,
    QatScaledStdConv2D,
)
from bnn_keras.quantize.ranges import FakeQuant, RangeOwner, quantize_kernel
from bnn_keras.quantize.transform import (
    QuantizeError,
    is_quantized,
    quantize_model,
    range_owners,
    require_ranges,
    unset_ranges,
)

__all__ = [
    "FakeQuant", "QatBatchNormalization", "QatChannelGate", "QatConv2D",
    "QatDense", "QatLearnableBias", "QatQuantConv2D", "QatRPReLU", "QatRecouplingMix",
    "QatScaledStdConv2D", "QuantizeError", "RangeOwner", "calibrate_ranges", "is_quantized",
    "quantize_kernel", "quantize_model", "range_owners", "require_ranges",
    "unset_ranges",
]
