"""A full disk under one folder, for tests: every write into a file there stores half its
data, then fails with ENOSPC, as a write to a full file system does."""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path


class _FullFile:
    """A file object whose writes run out of space half-way."""

    def __init__(self, raw):
        self._raw = raw

    def write(self, data):
        self._raw.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._raw.close()

    def __getattr__(self, name):
        return getattr(self._raw, name)


def fill_disk(monkeypatch, folder: str | os.PathLike) -> None:
    """Make files opened for writing under ``folder`` (by ``open``, ``io.open``,
    ``Path.open`` or ``os.fdopen``) fail with ENOSPC once written to."""
    folder = Path(folder).resolve()
    real_open, real_fdopen = builtins.open, os.fdopen

    def under(path) -> bool:
        return Path(os.fsdecode(path)).resolve().is_relative_to(folder)

    def writing(mode: str) -> bool:
        return any(c in mode for c in "wax+")

    def full_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        named = isinstance(file, (str, bytes, os.PathLike))
        return _FullFile(f) if named and writing(mode) and under(file) else f

    def full_fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        target = os.readlink(f"/proc/self/fd/{fd}")
        return _FullFile(f) if writing(mode) and under(target) else f

    monkeypatch.setattr(builtins, "open", full_open)
    monkeypatch.setattr(io, "open", full_open)
    monkeypatch.setattr(os, "fdopen", full_fdopen)
