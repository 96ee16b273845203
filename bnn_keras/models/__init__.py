"""Model registry: ``create(name, variant=..., num_classes=..., input_shape=...)``.

Every model is a functional ``keras.Model`` whose logits come from a ``Dense`` layer
named ``classifier``. ``names()`` lists the registered models. A family's options (the
keyword options of ``create``) are one frozen dataclass, a
:class:`~bnn_keras.models.registry.ModelOptions` (``get(name).options``).
"""

from bnn_keras.models import reactnet_resnet  # noqa: F401  (registers its models)

from bnn_keras.models import reactnet_a, birealnet, bnext, larq_zoo  # noqa: F401  # isort: skip
from bnn_keras.models.registry import (
    ModelEntry,
    ModelOptions,
    check_options,
    check_variant,
    create,
    get,
    names,
    register,
)
from bnn_keras.models.stats import ModelStats, model_stats
from bnn_keras.models.torch_import import ImportReport, import_torch, read_checkpoint

__all__ = ["ImportReport", "ModelEntry", "ModelOptions", "ModelStats", "check_options",
           "check_variant", "create", "get", "import_torch", "model_stats", "names",
           "read_checkpoint", "register"]
