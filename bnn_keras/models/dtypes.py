"""Dtype policies of a network: the policy it is built under, and its float32 copy.

A network trained under a mixed policy (``mixed_bfloat16``, ``mixed_float16``) computes
in 16 bits and keeps float32 variables; what is saved and deployed is its float32 copy
(:func:`float32_model`), so the export does not depend on how the network was trained.
Which policy a run picks is :mod:`bnn_keras.training.precision`'s business; this module
sits below both the training and the export, which both need the float32 copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import tf_keras as keras
from tf_keras.src.mixed_precision import policy as keras_policy

from bnn_keras.errors import BnnError


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Layers built in the block take the Keras policy ``name``; the global policy is
    restored afterwards."""
    # the policy as set, None when unset: global_policy() would return Policy(floatx())
    # and restoring that would pin it, so that a later set_floatx() no longer applies
    before = keras_policy._global_policy
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of ``model`` and the layers they hold (larq's quantizers are layers)."""
    return [m for m in model.submodules if isinstance(m, keras.layers.Layer)]


def is_mixed(model: keras.Model) -> bool:
    """Whether any layer of ``model``, or one a layer holds (a quantizer), computes in
    another dtype than its variables'."""
    return any(layer.dtype_policy.compute_dtype != layer.dtype_policy.variable_dtype
               for layer in _all_layers(model))


def _float32_config(config):
    """A layer's config with its dtype policy, and those of the layers serialised inside
    it (a larq layer's ``input_quantizer``), float32."""
    if isinstance(config, list):
        return [_float32_config(v) for v in config]
    if not isinstance(config, dict):
        return config
    config = {k: _float32_config(v) for k, v in config.items()}
    if "dtype" in config and "name" in config:  # a layer's own config
        config["dtype"] = "float32"
    return config


def float32_model(model: keras.Model) -> keras.Model:
    """``model`` with every layer float32, the quantizers inside them too, and the same
    weights (``model`` itself when it is float32 already): the network a mixed-precision
    run saves and exports."""
    if not is_mixed(model):
        return model

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        return layer.__class__.from_config(_float32_config(layer.get_config()))

    with dtype_policy("float32"):
        copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    if is_mixed(copy):
        raise BnnError(f"model {model.name}: a layer stayed mixed precision in its float32 copy")
    return copy
