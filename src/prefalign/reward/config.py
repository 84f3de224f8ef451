"""The settings of `prefalign rm train` and `prefalign rm eval` (one schema each, see
`prefalign.settings`); `train_reward_model` and `evaluate_reward_model` take the same names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from prefalign.settings import Settings, at_least, finite, optional, positive


@dataclass
class RewardTrainConfig(Settings):
    model: str = ""
    data: str = ""
    output: str = ""
    lr: float = 1e-5
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 8
    max_length: int | None = 1024
    use_margin: bool = True
    center_rewards_coefficient: float | None = None
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    seed: int = 0
    device: str | None = None
    trust_remote_code: bool = False

    def kwargs(self) -> dict[str, Any]:
        """`train_reward_model`'s keyword arguments (after model, data, output)."""
        values = dataclasses.asdict(self)
        for name in ("model", "data", "output"):
            values.pop(name)
        return values


RewardTrainConfig.HELP = {
    "model": "causal LM (or reward model) folder",
    "data": "pairwise preference data",
    "output": "folder for the trained reward model",
    "lr": "learning rate",
    "epochs": "passes over the data",
    "max_steps": "optimizer steps, overriding --epochs (default: from --epochs)",
    "batch_size": "pairs per step",
    "max_length": "tokens per prompt + response",
    "use_margin": "use the data's margin column in the loss, where there is one",
    "center_rewards_coefficient": "reward centering c·mean((r_c+r_r)^2), e.g. 0.01 (default: "
                                  "off)",
    "weight_decay": "AdamW weight decay",
    "max_grad_norm": "gradient clipping norm (0 or null = no clipping)",
    "seed": "seed of data order and the head's initialisation",
    "device": "cpu, cuda, cuda:N, ... (default: cuda when available, else cpu)",
    "trust_remote_code": "run the model folder's own code (off unless turned on)",
}
RewardTrainConfig.RULES = {
    "lr": (positive, "a finite number > 0"),
    "epochs": (positive, "a finite number > 0"),
    "max_steps": (optional(at_least(1)), ">= 1, or null"),
    "batch_size": (at_least(1), ">= 1"),
    "max_length": (optional(at_least(2)), ">= 2, or null"),
    "center_rewards_coefficient": (optional(lambda v: finite(v) and v >= 0), ">= 0, or null"),
    "weight_decay": (lambda v: finite(v) and v >= 0, "a finite number >= 0"),
    "max_grad_norm": (optional(lambda v: finite(v) and v >= 0), "a finite number >= 0, or null"),
}
RewardTrainConfig.REQUIRED = ("model", "data", "output")
RewardTrainConfig.FLAGS = {"use_margin": "--margin"}  # --no-margin ignores the column


@dataclass
class RewardEvalConfig(Settings):
    model: str = ""
    data: str = ""
    batch_size: int = 16
    max_length: int = 1024
    output: str | None = None


RewardEvalConfig.HELP = {
    "model": "trained reward model folder",
    "data": "pairwise preference data",
    "batch_size": "pairs per forward pass",
    "max_length": "tokens per prompt + response",
    "output": "write the result JSON here (default: printed only)",
}
RewardEvalConfig.RULES = {
    "batch_size": (at_least(1), ">= 1"),
    "max_length": (at_least(2), ">= 2"),
}
RewardEvalConfig.REQUIRED = ("model", "data")
