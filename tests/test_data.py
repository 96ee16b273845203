"""The bundled digits data: fixed stratified split, shapes and normalisation."""

import numpy as np
import pytest

from bnn_keras import data
from bnn_keras.errors import BnnError


def test_digits_split_is_fixed_stratified_and_normalised():
    x_train, y_train, x_test, y_test = data.digits_arrays()
    assert x_train.shape[1:] == (32, 32, 3) and x_test.shape[1:] == (32, 32, 3)
    assert len(x_train) + len(x_test) == 1797
    assert abs(len(x_test) / 1797 - 0.2) < 0.01
    train_frac = np.bincount(y_train) / len(y_train)
    test_frac = np.bincount(y_test) / len(y_test)
    np.testing.assert_allclose(train_frac, test_frac, atol=0.01)
    assert abs(x_train.mean()) < 1e-3 and abs(x_train.std() - 1) < 1e-3
    again = data.digits_arrays()
    np.testing.assert_array_equal(again[3], y_test)


def test_digits_pipelines():
    ds = data.load("digits", batch_size=50, seed=1)
    assert ds.num_classes == 10 and ds.input_shape == (32, 32, 3)
    x, y = next(iter(ds.train))
    assert x.shape == (50, 32, 32, 3) and x.dtype.name == "float32"
    assert y.dtype.name == "int32"
    n = sum(int(b[1].shape[0]) for b in ds.test)
    assert n == ds.test_size
    first = next(iter(ds.train))[1].numpy()
    second = next(iter(ds.train))[1].numpy()
    assert not np.array_equal(first, second)  # reshuffled each epoch


def test_unknown_dataset_and_bad_batch():
    with pytest.raises(BnnError, match="unknown dataset"):
        data.load("imagenet9000")
    with pytest.raises(BnnError, match="batch size"):
        data.load("digits", batch_size=0)


def test_unprepared_tfds_set_fails_fast_without_touching_the_network(tmp_path, monkeypatch):
    """cifar10 with an empty data folder: one line naming where the data goes, in seconds,
    and no connection attempted (sockets are blocked and counted; tfds' GCS lookup too)."""
    import socket
    import time

    from tensorflow_datasets.core.utils import gcs_utils

    attempts = []

    def blocked(*args, **kwargs):
        attempts.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket, "getaddrinfo", blocked)
    monkeypatch.setattr(socket, "create_connection", blocked)
    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.setattr(gcs_utils, "_is_gcs_disabled", True)
    monkeypatch.setattr(gcs_utils, "is_dataset_on_gcs", lambda *a: blocked(*a) and False)
    empty = tmp_path / "tfds"
    empty.mkdir()
    start = time.time()
    with pytest.raises(BnnError) as info:
        data.load("cifar10", data_dir=str(empty))
    assert time.time() - start < 30
    message = str(info.value)
    assert "\n" not in message and str(empty) in message and "tfds build cifar10" in message
    with pytest.raises(BnnError, match="--manual-dir"):
        data.load("imagenet2012", data_dir=str(empty))
    assert attempts == []
    assert not list(empty.rglob("*.tar*")) and not (empty / "downloads").exists()
