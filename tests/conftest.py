"""Shared fixtures. conftest imports bnn_keras before anything imports TensorFlow."""

import numpy as np
import pytest

import bnn_keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads)


@pytest.fixture(autouse=True)
def _seed():
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
