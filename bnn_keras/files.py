"""Files written atomically: a reader never sees half of one, a failed write leaves the
old file in place."""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from bnn_keras.errors import BnnError


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file under the process's umask (0644 under 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: str | os.PathLike) -> Path:
    """Raise a one-line :class:`BnnError` naming ``path`` unless a file can be written there
    (missing folders are fine: the writers make them); nothing is left behind.

    For checks before long work (a conversion) that ends in writing ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise BnnError(f"cannot write {path}: it is a directory")
    folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        raise BnnError(f"cannot write {path}: {folder} is not a directory")
    try:  # os.access says yes to root even on a read-only file system
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".bnn-keras-check.")
    except OSError as err:
        raise BnnError(f"cannot write {path}: {err.strerror or err}") from None
    os.close(fd)
    os.unlink(tmp)
    return path


def _write_temp(path: Path, data: bytes) -> str:
    """``data`` in a new temporary file beside ``path`` (flushed to disk), its name
    returned; a failure is a one-line :class:`BnnError` naming ``path`` (the temporary
    file removed)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise BnnError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _new_file_mode())  # mkstemp makes it 0600
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise BnnError(f"cannot write {path}: {err.strerror or err}") from None
        raise
    return tmp


def atomic_write_files(files: Mapping[str | os.PathLike, bytes]) -> list[Path]:
    """Write files that belong together (a grid and its plots) all or none.

    Each is written to a temporary file beside it first; only when every one is on disk
    are they renamed into place, so a full disk leaves the previous set whole: no new
    grid beside an old plot, no truncated plot. A failure is a one-line
    :class:`BnnError` naming the file that could not be written (no temporary file is
    left). Each file gets the mode a plain ``open()`` would give it.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            staged.append((_write_temp(Path(path), data), Path(path)))
        for tmp, path in staged:
            try:
                os.replace(tmp, path)
            except OSError as err:
                raise BnnError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
    return [path for _, path in staged]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename (never half-written).

    The file gets the mode a plain ``open()`` would give it (the umask applies), and a
    failure is a one-line :class:`BnnError` naming ``path``, not the temporary file.
    """
    return atomic_write_files({path: data})[0]


def figure_png(fig, **savefig_kwargs) -> bytes:
    """The matplotlib figure ``fig`` as PNG bytes, for the atomic writers (a plot saved
    straight to its path is left truncated by a full disk)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **savefig_kwargs)
    return buffer.getvalue()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8), atomically."""
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
