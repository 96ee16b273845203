"""BatchNorm statistics from data and shifts off zero, for checking untrained or briefly
trained models."""

from __future__ import annotations

import numpy as np
import tf_keras as keras


def calibrate_batchnorm(model: keras.Model, inputs: np.ndarray) -> int:
    r"""Set every ``BatchNormalization``'s moving statistics to those of ``inputs``.

    \[
    \mu_{\text{moving}} \leftarrow \mathrm{E}_{\text{batch}}[x], \quad
    \sigma^2_{\text{moving}} \leftarrow \mathrm{Var}_{\text{batch}}[x]
    \]

    for the input \(x\) each BN layer sees in one training-mode forward pass of ``inputs``
    (every BN normalises with the batch statistics in that pass, so each layer sees what it
    will see in inference afterwards). Done by setting the momentum to 0 for that pass
    only; no other weight changes. Returns the number of BN layers calibrated.

    An untrained net keeps BN's initial statistics (mean 0, variance 1), so in inference
    nothing is normalised: BNext's logits reach 1e8 at 224x224 and comparing two
    runtimes' top-1 on such values says nothing. Calibrated, the net computes what a
    trained one would at its scale.

    Example:
        ```python
        model = models.create("bnext_tiny", "bn", 1000, (224, 224, 3))
        calibrate_batchnorm(model, np.random.default_rng(0).standard_normal((8, 224, 224, 3)))
        ```
    """
    layers = [lay for lay in model.submodules
              if isinstance(lay, keras.layers.BatchNormalization)]
    if not layers:
        return 0
    momenta = [lay.momentum for lay in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        model(np.asarray(inputs, dtype=np.float32), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return len(layers)


#: Variables a net starts at zero and training moves: biases, batch-norm offsets and
#: ReActNet's shifts (``LearnableBias``, ``RPReLU``).
SHIFT_VARIABLES = frozenset({"bias", "beta", "bias_in", "bias_out"})


def perturb_shifts(model: keras.Model, rng: np.random.Generator, std: float = 0.1) -> int:
    r"""Add \(\mathcal{N}(0, \mathrm{std}^2)\) noise to every variable of ``model`` named
    in :data:`SHIFT_VARIABLES`; returns how many were moved.

    The converter drops an add of zeros, so an untrained net exports with fewer float ops
    than a trained one; moved off zero, every shift is there as in a trained net.

    Example:
        ```python
        perturb_shifts(model, np.random.default_rng(0))
        flatbuffer = convert(model)  # the ops a trained model exports with
        ```
    """
    moved = 0
    for variable in model.weights:
        if variable.name.split("/")[-1].split(":")[0] in SHIFT_VARIABLES:
            noise = rng.normal(0.0, std, variable.shape).astype(np.float32)
            variable.assign(variable.numpy() + noise)
            moved += 1
    return moved
