"""Parameter and MAC counts of a model, from larq's model profile."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import larq as lq
import tf_keras as keras


@dataclass(frozen=True)
class ModelStats:
    """Counts for one model at one input size.

    ``ops = binary_macs / 64 + float_macs``, the convention of Bi-Real Net and ReActNet.
    """

    total_params: int
    binary_params: int
    binary_macs: int
    float_macs: int

    @property
    def ops(self) -> float:
        return self.binary_macs / 64 + self.float_macs

    def as_dict(self) -> dict:
        return {**asdict(self), "ops": self.ops}


def model_stats(model: keras.Model) -> ModelStats:
    """Total and 1-bit parameters, 1-bit and 32-bit MACs as larq's ``summary`` counts them."""
    profile = lq.models.ModelProfile(model)
    return ModelStats(
        total_params=int(model.count_params()),
        binary_params=int(profile.weight_count(bitwidth=1)),
        binary_macs=int(profile.op_count("mac", 1)),
        float_macs=int(profile.op_count("mac", 32)),
    )
