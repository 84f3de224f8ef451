"""Training: the loop, its configuration, checkpoints and metrics."""

from prefalign.train.config import TrainConfig
from prefalign.train.trainer import Trainer, TrainResult, train

__all__ = ["TrainConfig", "Trainer", "TrainResult", "train"]
