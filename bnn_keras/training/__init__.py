"""Training: recipes, optimisers and schedules, AGC, distillation, two-step runs.

Modules: :mod:`~bnn_keras.training.config` (``TrainConfig``), :mod:`~bnn_keras.training.run`
(run folders), :mod:`~bnn_keras.training.optim`, :mod:`~bnn_keras.training.distill`,
:mod:`~bnn_keras.training.two_step`, :mod:`~bnn_keras.training.recipes`,
:mod:`~bnn_keras.training.callbacks`, :mod:`~bnn_keras.training.resume` (which run folder and
checkpoint a resume starts from).
"""

from bnn_keras.training.agc import adaptive_clip, unitwise_norm
from bnn_keras.training.callbacks import first_checkpoint_prefix, plot_curves
from bnn_keras.training.config import TrainConfig
from bnn_keras.training.distill import distribution_loss, load_teacher, multi_teacher_loss
from bnn_keras.training.optim import WarmupCosine, WeightDecay, build_schedule
from bnn_keras.training.recipes import load_recipe, recipe_config
from bnn_keras.training.run import RunResult, last_checkpoint_prefix, train
from bnn_keras.training.train_model import TrainingModel
from bnn_keras.training.two_step import InitReport, init_from, set_real_weights

__all__ = ["InitReport", "RunResult", "TrainConfig", "TrainingModel", "WarmupCosine",
           "WeightDecay", "adaptive_clip", "build_schedule", "distribution_loss",
           "first_checkpoint_prefix", "init_from", "last_checkpoint_prefix", "load_recipe",
           "load_teacher", "multi_teacher_loss", "plot_curves", "recipe_config",
           "set_real_weights", "train", "unitwise_norm"]
