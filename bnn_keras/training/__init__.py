"""Training: adaptive gradient clipping, the AGC train step and resumable runs."""

from bnn_keras.training.agc import adaptive_clip, unitwise_norm
from bnn_keras.training.config import TrainConfig
from bnn_keras.training.run import RunResult, train
from bnn_keras.training.train_model import TrainingModel

__all__ = ["RunResult", "TrainConfig", "TrainingModel", "adaptive_clip", "train",
           "unitwise_norm"]
