"""Keeping TensorFlow's native log lines off the terminal while something is probed."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Silence TensorFlow's C++ warnings (written straight to file descriptor 2) and its
    Python logger while a checkpoint or an image is probed: a failure is reported in one line
    of ours, not in TensorFlow's dozen."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        logger.setLevel("ERROR")
        yield
    finally:
        logger.setLevel(level)
        os.dup2(saved, 2)
        os.close(saved)
