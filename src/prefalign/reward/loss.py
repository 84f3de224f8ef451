"""The Bradley-Terry reward-model loss (as TRL's RewardTrainer computes it).

Under Bradley-Terry, P(y_c ≻ y_r) = σ(r_c − r_r). The loss is the negative log-likelihood of
the observed preferences, with an optional per-pair margin that demands the chosen reward beat
the rejected one by at least that much (Llama 2's margin loss), and optional reward centering
(Eisenstein et al., "Helping or Herding?") that keeps the rewards near zero:

    loss = mean_i[ −log σ(r_c,i − r_r,i − m_i) ] + c · mean_i[ (r_c,i + r_r,i)² ]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, *,
                       margin: torch.Tensor | None = None,
                       center_rewards_coefficient: float | None = None) -> torch.Tensor:
    """Scalar loss of a batch of pairs; ``chosen_rewards``/``rejected_rewards``/``margin``: [N].

    ``center_rewards_coefficient`` (typically 0.01) adds c·mean((r_c + r_r)²).
    """
    if chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError(f"chosen and rejected rewards differ in shape: "
                         f"{tuple(chosen_rewards.shape)} vs {tuple(rejected_rewards.shape)}")
    diff = chosen_rewards - rejected_rewards
    if margin is not None:
        diff = diff - margin.to(diff)
    loss = -F.logsigmoid(diff).mean()
    if center_rewards_coefficient:
        loss = loss + center_rewards_coefficient * ((chosen_rewards + rejected_rewards) ** 2).mean()
    return loss
