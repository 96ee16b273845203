"""Post-training int8: the ranges of a quantization-aware copy measured on data instead of
learned in training."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import tf_keras as keras

from bnn_keras.quantize.transform import range_owners


def calibrate_ranges(model: keras.Model, batches: Iterable[np.ndarray]) -> int:
    """Set every int8 range of the quantization-aware ``model`` to the mean over
    ``batches`` of each batch's minimum and maximum of that tensor, measured on float
    values (nothing quantized while measuring; batch norms in inference). Returns the
    number of batches used.

    The mean of the batch extremes rather than the extreme over all batches: one outlier
    image would otherwise widen a range, and coarsen its steps, for every image.

    Example:
        ```python
        qat_net = quantize_model(net)
        calibrate_ranges(qat_net, (x[i:i + 64] for i in range(0, 512, 64)))
        ```
    """
    owners = range_owners(model)
    for layer in owners:
        for _, low, high in layer.range_variables():
            low.assign(0.0)
            high.assign(0.0)
    seen = 0
    try:
        for layer in owners:
            layer.range_mode = "calibrate"
        for batch in batches:
            for layer in owners:
                layer.calibration_batches = seen
            model(np.asarray(batch, np.float32), training=False)  # eager: reads the mode
            seen += 1
    finally:
        for layer in owners:
            layer.range_mode = None
            layer.calibration_batches = 0
    return seen
