"""Files: atomic writes and checked loading of ``.keras`` models."""

from __future__ import annotations

import io
import json
import os
import tempfile
import types
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import tf_keras as keras

from bnn_keras.errors import BnnError, first_line


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


def save_keras_atomic(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save ``model`` in the ``.keras`` format, atomically."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.",
                                    suffix=".tmp.keras")
        os.close(fd)
    except OSError as err:
        raise BnnError(f"cannot write {path}: {err.strerror or err}") from None
    tmp = Path(name)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except OSError as err:  # a full disk: the file keras was writing is dropped below
        raise BnnError(f"cannot write {path}: {err.strerror or first_line(err)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


class _InMemoryEntries(zipfile.ZipFile):
    """A ``ZipFile`` that reads each entry whole into memory when opened for reading."""

    def open(self, name, mode="r", pwd=None, **kwargs):
        if mode != "r":
            return super().open(name, mode, pwd, **kwargs)
        with super().open(name, mode, pwd, **kwargs) as entry:
            return io.BytesIO(entry.read())


def _keras_zip_shim_applies() -> bool:
    """Whether tf-keras's loader reads archives through its module's ``zipfile`` name,
    the one :func:`_fast_keras_zip_reads` replaces (tf-keras 2.x; checked by
    ``tests/test_io.py``)."""
    from tf_keras.src.saving import saving_lib

    return getattr(saving_lib, "zipfile", None) is zipfile


@contextmanager
def _fast_keras_zip_reads() -> Iterator[None]:
    """Make tf-keras read the entries of a ``.keras`` archive from memory while loading.

    tf-keras opens the weights' HDF5 inside the archive with ``ZipFile.open``; h5py then
    seeks backwards in it, and every backward seek of a ``ZipExtFile`` re-reads the
    entry from its start (Python 3.11 to 3.13 alike), so loading is quadratic in the
    model's size. tf-keras offers no public way to read from anything but the archive
    (``load_model`` takes a path and opens the zip itself), so its ``saving_lib.zipfile``
    is swapped for a copy whose ``ZipFile`` reads each entry into a ``BytesIO`` once, for
    the duration of the load. When tf-keras no longer reads through that name, loading
    goes on unchanged (only slower) and ``tests/test_io.py`` fails.
    """
    from tf_keras.src.saving import saving_lib

    if not _keras_zip_shim_applies():
        yield
        return
    shim = types.ModuleType("zipfile")
    shim.__dict__.update(zipfile.__dict__)
    shim.ZipFile = _InMemoryEntries
    saving_lib.zipfile = shim
    try:
        yield
    finally:
        saving_lib.zipfile = zipfile


#: The largest ``config.json`` read from a ``.keras`` archive (the largest network's is
#: under 1 MiB); a bigger one is refused before it is decompressed.
MAX_CONFIG_BYTES = 64 * 2**20


def read_keras_config(path: Path) -> dict:
    """The parsed ``config.json`` of the ``.keras`` archive ``path``, or a one-line
    :class:`BnnError` naming the file."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise BnnError(f"{path}: its config.json is {info.file_size} bytes, over "
                               f"the {MAX_CONFIG_BYTES} a model needs")
            text = archive.read(info)
    except KeyError:
        raise BnnError(f"{path} is not a .keras model (no config.json inside)") from None
    except (OSError, zipfile.BadZipFile) as err:
        raise BnnError(f"{path} is not a valid .keras file (corrupt?): {first_line(err)}"
                       ) from None
    try:
        return json.loads(text)
    except RecursionError:
        raise BnnError(f"{path}: its config.json is nested too deeply") from None
    except ValueError as err:
        raise BnnError(f"{path}: its config.json is not valid JSON: {first_line(err)}"
                       ) from None


def check_keras_file(path: str | os.PathLike, *, trust_code: bool = False) -> Path:
    """``path`` if it is a ``.keras`` archive whose config loads no code, else a one-line
    :class:`BnnError` naming the file (and the layer, for code).

    Unless ``trust_code`` (or :func:`bnn_keras.trust.trusting_code` around the call), the
    config is checked with :func:`bnn_keras.trust.check_model_config`.
    """
    from bnn_keras.trust import check_model_config, code_trusted

    path = Path(path)
    if not path.exists():
        raise BnnError(f"model file not found: {path}")
    if path.is_dir():
        raise BnnError(f"expected a .keras model file, got a directory: {path}")
    if path.suffix != ".keras":
        raise BnnError(f"expected a .keras model file, got {path.name}")
    if not zipfile.is_zipfile(path):
        raise BnnError(f"{path} is not a valid .keras file (not a zip archive; corrupt?)")
    config = read_keras_config(path)
    if not (trust_code or code_trusted()):
        try:
            check_model_config(config)
        except BnnError as err:
            raise BnnError(f"refusing to load {path}: {err} (--trust-code loads it anyway: "
                           "only for a file whose author you trust)") from None
    return path


def load_keras_model(path: str | os.PathLike, *, trust_code: bool = False) -> keras.Model:
    """Load a ``.keras`` model holding Keras, larq and bnn_keras layers, with one-line
    errors.

    The file is checked first (:func:`check_keras_file`): a layer or function that could
    run code named in the file is refused, naming the layer, unless ``trust_code``, for a
    file whose author you trust.
    """
    import bnn_keras._registration

    bnn_keras._registration.register_all()
    path = check_keras_file(path, trust_code=trust_code)
    try:
        with _fast_keras_zip_reads():
            return keras.models.load_model(path, compile=False)
    except Exception as err:  # noqa: BLE001 - any loading failure is a bad file for the user
        first = first_line(err, limit=None)
        raise BnnError(f"cannot load {path}: {first[:300]}") from None
