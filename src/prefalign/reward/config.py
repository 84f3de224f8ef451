"""The settings of `prefalign rm train` and `prefalign rm eval` (one schema each, see
`prefalign.core.settings`); `train_reward_model` and `evaluate_reward_model` take the same names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from prefalign.core.settings import Settings, at_least, finite, optional, positive, setting


@dataclass
class RewardTrainConfig(Settings):
    model: str = setting("", help="causal LM (or reward model) folder")
    data: str = setting("", help="pairwise preference data")
    output: str = setting("", help="folder for the trained reward model")
    lr: float = setting(1e-5, help="learning rate", rule=(positive, "a finite number > 0"))
    epochs: float = setting(1.0, help="passes over the data",
                            rule=(positive, "a finite number > 0"))
    max_steps: int | None = setting(
        None, help="optimizer steps, overriding --epochs (default: from --epochs)",
        rule=(optional(at_least(1)), ">= 1, or null"))
    batch_size: int = setting(8, help="pairs per step", rule=(at_least(1), ">= 1"))
    max_length: int | None = setting(1024, help="tokens per prompt + response",
                                     rule=(optional(at_least(2)), ">= 2, or null"))
    use_margin: bool = setting(True,
                               help="use the data's margin column in the loss, where there is one")
    center_rewards_coefficient: float | None = setting(
        None, help="reward centering c·mean((r_c+r_r)^2), e.g. 0.01 (default: off)",
        rule=(optional(lambda v: finite(v) and v >= 0), ">= 0, or null"))
    weight_decay: float = setting(0.0, help="AdamW weight decay",
                                  rule=(lambda v: finite(v) and v >= 0, "a finite number >= 0"))
    max_grad_norm: float | None = setting(
        1.0, help="gradient clipping norm (0 or null = no clipping)",
        rule=(optional(lambda v: finite(v) and v >= 0), "a finite number >= 0, or null"))
    seed: int = setting(0, help="seed of data order and the head's initialisation")
    device: str | None = setting(
        None, help="cpu, cuda, cuda:N, ... (default: cuda when available, else cpu)")
    trust_remote_code: bool = setting(
        False, help="run the model folder's own code (off unless turned on)")

    def kwargs(self) -> dict[str, Any]:
        """`train_reward_model`'s keyword arguments (after model, data, output)."""
        values = dataclasses.asdict(self)
        for name in ("model", "data", "output"):
            values.pop(name)
        return values


RewardTrainConfig.REQUIRED = ("model", "data", "output")
RewardTrainConfig.FLAGS = {"use_margin": "--margin"}  # --no-margin ignores the column


@dataclass
class RewardEvalConfig(Settings):
    model: str = setting("", help="trained reward model folder")
    data: str = setting("", help="pairwise preference data")
    batch_size: int = setting(16, help="pairs per forward pass", rule=(at_least(1), ">= 1"))
    max_length: int = setting(1024, help="tokens per prompt + response",
                              rule=(at_least(2), ">= 2"))
    output: str | None = setting(None, help="write the result JSON here (default: printed only)")
    plot: str | None = setting(None, help="write the reliability diagram (confidence against "
                               "accuracy) to this PNG (default: none)")


RewardEvalConfig.REQUIRED = ("model", "data")
