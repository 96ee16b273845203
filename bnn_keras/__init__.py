"""bnn-keras: binary neural networks in Keras, exported with LCE, benchmarked on ARM.

The sub-packages stand on each other in this order, each importing only from the ones
before it (``tests/test_structure.py`` draws the import graph and checks it)::

    data -> models -> export -> training -> bench -> insight -> cli

``models`` takes in ``layers``, ``quantizers`` and ``fusion`` (what a network is made
of); the modules beside them (``errors``, ``files``, ``keras_files``, ``trust``,
``variables``, ...) sit under everything. ``export`` comes before ``training`` because
a training run ends with the export (the same function ``bnn-keras export`` calls),
while converting a network needs nothing of training (its float32 copy is
:mod:`bnn_keras.models.dtypes`). ``bench`` times the exported flatbuffers; ``insight``
reads run folders, models and flatbuffers; the ``cli`` sits on top of all of them.

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
