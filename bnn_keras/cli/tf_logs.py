"""Keep TensorFlow's C++ log lines out of the user's terminal.

Importing TensorFlow and finding its devices prints lines such as ``W0000 ...
computation_placer.cc:177] computation placer already registered`` or ``E ...
cuda_platform.cc:51] failed call to cuInit`` to file descriptor 2 before absl's logging
starts, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence them. :func:`import_tensorflow_quietly`
does both with descriptor 2 sent to a temporary file and passes on every other line
(a real import error still shows). Lines logged later, while a command runs (XLA's
``Compiled cluster using XLA!``), come from absl, which no environment variable quiets:
:func:`native_log_filter` sends descriptor 2 through :mod:`bnn_keras.cli.log_filter` for
the whole command, dropping the info and warning lines. ``BNN_KERAS_DEBUG=1`` keeps
everything.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bnn_keras.cli.log_filter import TF_LOG_LINE

__all__ = ["TF_LOG_LINE", "import_tensorflow_quietly", "native_log_filter"]


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


def _start_filter() -> subprocess.Popen | None:
    """The filter process, writing to the current descriptor 2; None if it cannot run."""
    script = Path(__file__).with_name("log_filter.py")
    try:
        os.fstat(2)
        # its own session: Ctrl-C in the terminal must not stop it before the command's
        # last words; it ends when every writer of the pipe has closed it
        return subprocess.Popen([sys.executable, "-S", "-E", str(script)],
                                stdin=subprocess.PIPE, stdout=2, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    except OSError:
        return None


@contextlib.contextmanager
def native_log_filter() -> Iterator[None]:
    """Send descriptor 2 through the log filter while the block runs (not with
    ``BNN_KERAS_DEBUG`` set); subprocesses started in the block inherit it."""
    if os.environ.get("BNN_KERAS_DEBUG"):
        yield
        return
    for stream in (sys.stderr, sys.__stderr__):
        if stream is not None:
            stream.flush()
    proc = _start_filter()
    if proc is None:
        yield
        return
    saved = os.dup(2)
    os.dup2(proc.stdin.fileno(), 2)
    proc.stdin.close()  # descriptor 2 is now the only writer here
    try:
        yield
    finally:
        for stream in (sys.stderr, sys.__stderr__):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
        os.dup2(saved, 2)
        os.close(saved)
        try:  # a process started in the block may still hold the pipe: do not wait on it
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
