"""``.keras`` model files: saved atomically, checked before loading, loaded without
running code from the file."""

from __future__ import annotations

import io
import json
import os
import tempfile
import types
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import tf_keras as keras

from bnn_keras.errors import BnnError, first_line


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
    ``tests/test_files.py``)."""
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
    goes on unchanged (only slower) and ``tests/test_files.py`` fails.
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
