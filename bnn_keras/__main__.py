"""``python -m bnn_keras`` is the ``bnn-keras`` command."""

from bnn_keras.cli import main

main()
