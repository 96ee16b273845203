"""Variables of larq's quantized layers."""

from __future__ import annotations


def latent_variable(variable):
    """The real-valued variable that ``variable`` stands for.

    larq's quantized kernels are wrappers whose ``latent_variable`` is the stored,
    trained variable; every other variable is its own latent variable.

    Example:
        ```python
        latent_variable(layer.kernel).assign(weights)
        ```
    """
    return getattr(variable, "latent_variable", variable)
