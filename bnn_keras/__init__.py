"""bnn-keras: binary neural networks in Keras, exported with LCE, benchmarked on ARM.

The data flows through the sub-packages in this order::

    data -> models (layers, quantizers) -> training -> export -> bench

Importing this package sets ``TF_USE_LEGACY_KERAS=1`` so that ``tf.keras`` is Keras 2,
which larq requires.
"""

from bnn_keras._env import ensure_legacy_keras

ensure_legacy_keras()

__version__ = "0.1.0"
