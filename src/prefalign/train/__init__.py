"""Training: the loop, its configuration, checkpoints and metrics."""

from prefalign.train.config import TrainConfig

_LAZY = ("Trainer", "TrainResult", "train")  # torch comes with them: loaded on first use, so
# `prefalign --help` (which reads TrainConfig's defaults and help) answers at once


def __getattr__(name):
    if name in _LAZY:
        from prefalign.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'prefalign.train' has no attribute {name!r}")


__all__ = ["TrainConfig", "Trainer", "TrainResult", "train"]
