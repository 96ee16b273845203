"""Atomic writes: the user's umask, and errors that name the file the user asked for."""

import os

import pytest

from bnn_keras.errors import BnnError
from bnn_keras.files import atomic_write_bytes, atomic_write_json, check_writable


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def test_atomic_writes_keep_the_umask(tmp_path, umask):
    path = atomic_write_json(tmp_path / "config.json", {"a": 1})
    assert path.stat().st_mode & 0o777 == 0o644
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert plain.stat().st_mode & 0o777 == path.stat().st_mode & 0o777
    umask(0o077)
    assert atomic_write_bytes(tmp_path / "secret", b"x").stat().st_mode & 0o777 == 0o600
    umask(0o002)
    assert atomic_write_bytes(tmp_path / "config.json", b"{}").stat().st_mode & 0o777 == 0o664


def test_write_errors_name_the_real_path(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file")
    target = blocker / "sub" / "model.tflite"
    with pytest.raises(BnnError, match=f"cannot write {target}"):
        atomic_write_bytes(target, b"data")
    with pytest.raises(BnnError, match=f"cannot write {target}"):
        check_writable(target)
    with pytest.raises(BnnError, match="is a directory"):
        check_writable(tmp_path)
    check_writable(tmp_path / "new" / "deeper" / "file.json")  # folders get made on writing
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no temp files left


def test_keras_loads_read_archive_entries_from_memory(tmp_path, monkeypatch):
    """load_keras_model reads the weights through the in-memory zip shim; this fails when
    tf-keras stops reading archives through ``saving_lib.zipfile`` (loading then works
    but is quadratic in the model's size: see ``_fast_keras_zip_reads``)."""
    import zipfile

    import numpy as np
    import tf_keras as keras
    from tf_keras.src.saving import saving_lib

    from bnn_keras import keras_files as bio

    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    path = bio.save_keras_atomic(net, tmp_path / "m.keras")
    opened = []
    original = bio._InMemoryEntries.open

    def spy(self, name, mode="r", *args, **kwargs):
        opened.append(name)
        return original(self, name, mode, *args, **kwargs)

    monkeypatch.setattr(bio._InMemoryEntries, "open", spy)
    assert bio._keras_zip_shim_applies(), (
        "tf-keras no longer loads .keras archives through saving_lib.zipfile: find the "
        "new route for _fast_keras_zip_reads")
    loaded = bio.load_keras_model(path)
    assert "model.weights.h5" in opened
    assert saving_lib.zipfile is zipfile  # put back after the load
    for a, b in zip(net.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
