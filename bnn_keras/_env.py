"""Make TensorFlow use Keras 2 (tf-keras), which larq needs.

TensorFlow >= 2.16 binds ``tf.keras`` to Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` is set
before TensorFlow resolves ``tf.keras``. larq's layers subclass ``tf.keras.layers.Layer``
and do not work with Keras 3, so importing ``bnn_keras`` sets the variable, and checks
that it took effect when TensorFlow was imported first.
"""

from __future__ import annotations

import os
import sys

#: the environment variable naming the modules that register your own models
#: (:func:`bnn_keras.models.registry.load_plugins`)
PLUGINS_ENV = "BNN_KERAS_MODELS"

_HOW_TO_FIX = (
    "bnn_keras needs Keras 2 (tf-keras), but TensorFlow was already imported with Keras 3 "
    "as tf.keras. Import bnn_keras before tensorflow, or set TF_USE_LEGACY_KERAS=1 in the "
    "environment before starting Python."
)


def ensure_legacy_keras() -> None:
    """Set ``TF_USE_LEGACY_KERAS=1``; if TensorFlow is already loaded, verify ``tf.keras``.

    Raises:
        ImportError: if TensorFlow already bound ``tf.keras`` to Keras 3.
    """
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules:
        return  # TensorFlow will read the variable when it is imported
    import importlib

    import tensorflow as tf
    import tf_keras

    # Two bindings, both fixed by TensorFlow: the lazy attribute ``tf.keras`` is resolved on
    # first use (so after the line above, when nothing used it yet), but the module path
    # ``tensorflow.keras``, which larq imports from, when TensorFlow was imported.
    path_keras = importlib.import_module("tensorflow.keras")
    if (tf.keras.layers.Layer is not tf_keras.layers.Layer
            or path_keras.layers.Layer is not tf_keras.layers.Layer):
        raise ImportError(_HOW_TO_FIX)
