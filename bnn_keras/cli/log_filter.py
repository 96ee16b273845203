"""Drop TensorFlow's C++ info and warning lines from a byte stream (a standalone script).

XLA and TensorFlow log through their own statically linked copy of absl, whose level
``TF_CPP_MIN_LOG_LEVEL`` does not reach, lines such as ``I0000 ... device_compiler.h:188]
Compiled cluster using XLA!`` while a command runs. The CLI sends file descriptor 2 through
this script, run as its own process (:func:`bnn_keras.cli.tf_logs.native_log_filter`): a
separate process still forwards the last lines when the command dies on a fatal error.
Error and fatal lines (``E``, ``F``), but for TensorFlow's known harmless ones, and
everything else pass. Standard library only: it runs before, and apart from, the package.
"""

from __future__ import annotations

import os
import re
import sys

#: a TensorFlow / absl C++ log line, in either of the two formats TensorFlow prints
TF_LOG_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\]"
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] [\w./-]+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called)")
_LEVEL = re.compile(rb"^(?:([IWEF])\d{4} |\d{4}-\d\d-\d\d [\d:.]+: ([IWEF]) )")
#: error lines TensorFlow prints about itself and then ignores: with op determinism on,
#: tf.data rewrites a parallel map into a sequential one and keeps an attribute the
#: sequential op does not declare ("Unknown attributes will be ignored")
KNOWN_HARMLESS = re.compile(rb"NodeDef mentions attribute \w+ which is not in the op definition")
# A partial line longer than this that does not start like a log line is passed on.
_PREFIX_BYTES = 96


def is_noise(line: bytes) -> bool:
    """Whether ``line`` is a C++ info or warning line (or absl's start-up notice), or an
    error line of :data:`KNOWN_HARMLESS`."""
    if not TF_LOG_LINE.match(line):
        return False
    m = _LEVEL.match(line)
    return (m is None or (m.group(1) or m.group(2)) in (b"I", b"W")
            or KNOWN_HARMLESS.search(line) is not None)


def _may_become_log_line(partial: bytes) -> bool:
    """Whether an unfinished line could still turn out to be a log line (then wait)."""
    if TF_LOG_LINE.match(partial):
        return True
    return len(partial) < _PREFIX_BYTES and partial[:1] in b"IWEF0123456789"


def filter_chunk(pending: bytes, chunk: bytes) -> tuple[bytes, bytes]:
    """(bytes to write, bytes to keep for later) after reading ``chunk``."""
    *lines, rest = (pending + chunk).split(b"\n")
    out = b"".join(line + b"\n" for line in lines if not is_noise(line))
    if rest and not _may_become_log_line(rest):  # e.g. a progress bar redrawn with \r
        return out + rest, b""
    return out, rest


def _write(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except OSError:  # the terminal went away: keep draining, write nothing
            return


def run(read_fd: int = 0, write_fd: int = 1) -> None:
    """Copy ``read_fd`` to ``write_fd`` without the noise, until end of file."""
    pending = b""
    while chunk := os.read(read_fd, 65536):
        out, pending = filter_chunk(pending, chunk)
        _write(write_fd, out)
    if pending and not is_noise(pending):
        _write(write_fd, pending)


if __name__ == "__main__":
    run()
    sys.exit(0)
