"""Keep TensorFlow's C++ start-up log lines out of the user's terminal.

Importing TensorFlow and finding its devices prints lines such as ``W0000 ...
computation_placer.cc:177] computation placer already registered`` or ``E ...
cuda_platform.cc:51] failed call to cuInit`` to file descriptor 2 before absl's logging
starts, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence them. :func:`import_tensorflow_quietly`
does both with descriptor 2 sent to a temporary file and passes on every other line
(a real import error still shows). ``BNN_KERAS_DEBUG=1`` keeps everything.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

#: a TensorFlow / absl C++ log line, in either of the two formats TensorFlow prints
TF_LOG_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\]"
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] [\w./-]+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called)")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow, larq and LCE and list the devices, dropping the C++ log lines
    they print."""
    if "tensorflow" in sys.modules or os.environ.get("BNN_KERAS_DEBUG"):
        return
    import bnn_keras  # noqa: F401  (Keras 2 before TensorFlow)

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            # LCE's own copy of TensorFlow's kernels registers the GPU factories again
            # (more "already registered" lines)
            import larq  # noqa: F401
            import larq_compute_engine  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            kept = [line for line in log if not TF_LOG_LINE.match(line)]
            if kept:
                sys.stderr.buffer.write(b"".join(kept))
                sys.stderr.flush()
