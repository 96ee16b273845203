"""bnn-keras: binary neural networks in Keras, exported with LCE, benchmarked on ARM.

The data flows through the sub-packages in this order::

    data -> models (layers, quantizers) -> training -> export -> bench

Importing this package sets ``TF_USE_LEGACY_KERAS=1`` so that ``tf.keras`` is Keras 2,
which larq requires, and registers every layer, quantizer and schedule bnn_keras saves
with Keras as soon as TensorFlow is loaded (not before: ``bnn-keras --help`` does not
load it), so ``tf.keras.models.load_model`` reads the files bnn_keras writes.
"""

from bnn_keras._env import ensure_legacy_keras
from bnn_keras._registration import register_when_tensorflow_loads

ensure_legacy_keras()

__version__ = "0.1.0"

register_when_tensorflow_loads()
