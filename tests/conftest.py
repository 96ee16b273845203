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
from tests.isolated import resident_mb  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()
    resident_mb()  # gives freed heap back to the OS: the next test starts from less


@pytest.fixture
def rng():
    return np.random.default_rng(0)


_child = None


def pytest_pyfunc_call(pyfuncitem):
    """A test marked ``isolated`` runs in a fresh interpreter (see tests/isolated.py)."""
    global _child
    if pyfuncitem.get_closest_marker("isolated") is None:
        return None
    from tests.isolated import Child

    if _child is None:
        _child = Child()
    names = pyfuncitem._fixtureinfo.argnames
    _child.run(pyfuncitem.obj, {name: pyfuncitem.funcargs[name] for name in names})
    return True


def pytest_sessionfinish(session):
    if _child is not None:
        _child.close()
