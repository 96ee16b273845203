"""Training: recipes, optimisers and schedules, AGC, distillation, two-step runs.

Modules: :mod:`~bnn_keras.training.config` (``TrainConfig``), :mod:`~bnn_keras.training.run`
(a run), :mod:`~bnn_keras.training.run_steps` (its build, fit and finish steps),
:mod:`~bnn_keras.training.run_folder` (a run folder's files), :mod:`~bnn_keras.training.optim`,
:mod:`~bnn_keras.training.schedules`, :mod:`~bnn_keras.training.distill`,
:mod:`~bnn_keras.training.two_step`, :mod:`~bnn_keras.training.recipes`,
:mod:`~bnn_keras.training.callbacks`, :mod:`~bnn_keras.training.checkpoints` (a run's
checkpoints and their writer), :mod:`~bnn_keras.training.resume` (which run folder and
checkpoint a resume starts from).
"""

import importlib

#: public name -> the module defining it; imported on first use, so that reading a
#: ``TrainConfig`` (as the CLI does to build its options) does not import TensorFlow
_EXPORTS = {
    "adaptive_clip": "agc", "unitwise_norm": "agc",
    "plot_curves": "callbacks",
    "EpochCheckpoint": "checkpoints", "first_checkpoint_prefix": "checkpoints",
    "TrainConfig": "config",
    "distribution_loss": "distill", "load_teacher": "distill", "multi_teacher_loss": "distill",
    "WeightDecay": "optim",
    "EpochSchedule": "schedules", "WarmupCosine": "schedules", "WarmupLinear": "schedules",
    "build_schedule": "schedules",
    "RunFolder": "run_folder", "model_file": "run_folder",
    "load_recipe": "recipes", "recipe_config": "recipes",
    "RunResult": "run", "last_checkpoint_prefix": "run", "train": "run",
    "TrainingModel": "train_model",
    "InitReport": "two_step", "init_from": "two_step", "set_real_weights": "two_step",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
