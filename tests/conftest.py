"""Shared fixtures. conftest imports bnn_keras before anything imports TensorFlow."""

import ctypes
import gc
import os

import numpy as np
import pytest

import bnn_keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads)

try:
    _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc
    _malloc_trim = None


def _resident_gb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9
    except (OSError, ValueError):
        return 0.0


@pytest.fixture(autouse=True)
def _seed():
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()
    # the two test workers share 23 GB, and a bnext_large conversion takes 9-14 GB: hand
    # what a large test freed back to the OS (glibc keeps freed heap pages resident)
    if _malloc_trim is not None and _resident_gb() > 2.0:
        gc.collect()
        _malloc_trim(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
