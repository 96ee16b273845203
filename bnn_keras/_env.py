"""Make TensorFlow use Keras 2 (tf-keras), which larq needs.

TensorFlow >= 2.16 binds ``tf.keras`` to Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` is set
before ``tf.keras`` is first resolved. larq's layers subclass ``tf.keras.layers.Layer``
and do not work with Keras 3, so this module sets the variable on import of
``bnn_keras`` and checks that it took effect.
"""

from __future__ import annotations

import os

_HOW_TO_FIX = (
    "bnn_keras needs Keras 2 (tf-keras) but TensorFlow was already imported with Keras 3. "
    "Set TF_USE_LEGACY_KERAS=1 in the environment, or import bnn_keras before tensorflow."
)


def ensure_legacy_keras() -> None:
    """Set ``TF_USE_LEGACY_KERAS=1`` and verify ``tf.keras`` is tf-keras.

    Raises:
        ImportError: if TensorFlow already bound ``tf.keras`` to Keras 3.
    """
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf_keras

    if tf.keras.layers.Layer is not tf_keras.layers.Layer:
        raise ImportError(_HOW_TO_FIX)
