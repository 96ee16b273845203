"""Model registry: ``create(name, variant=..., num_classes=..., input_shape=...)``.

Every model is a functional ``keras.Model`` whose logits come from a ``Dense`` layer
named ``classifier``. ``names()`` lists the registered models.
"""

from bnn_keras.models import reactnet_resnet  # noqa: F401  (registers its models)

from bnn_keras.models import reactnet_a, birealnet, bnext, larq_zoo  # noqa: F401  # isort: skip
from bnn_keras.models.registry import ModelEntry, create, get, names, register
from bnn_keras.models.stats import ModelStats, model_stats
from bnn_keras.models.torch_import import ImportReport, import_torch, read_checkpoint

__all__ = ["ImportReport", "ModelEntry", "ModelStats", "create", "get", "import_torch",
           "model_stats", "names", "read_checkpoint", "register"]
