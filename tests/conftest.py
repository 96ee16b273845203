"""Shared fixtures. conftest imports bnn_keras before anything imports TensorFlow."""

import os

import numpy as np
import pytest

# With as many test workers as cores (pytest-xdist, `-n 2` on 2 cores), each TensorFlow
# gets its share of the cores: thread pools of one per core in every worker oversubscribe
# them. Read when TensorFlow starts its runtime; subprocesses the tests start inherit it.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _share = str(max(1, (os.cpu_count() or 1) // _workers))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", _share)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", _share)

import bnn_keras  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads)


@pytest.fixture(autouse=True)
def _seed():
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
