"""Implicit rewards and the reward metrics a trainer logs (no gradients)."""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def implicit_rewards(
    policy_logps: Tensor,
    ref_logps: Tensor | None = None,
    beta: float = 0.1,
    lengths: Tensor | None = None,
) -> Tensor:
    """β·(log π − log π_ref) per example, detached; the DPO family's implicit reward.

    Without a reference (SimPO, CPO, ORPO, …) the reward is β·log π; with ``lengths`` it is
    divided by the response length (SimPO's per-token reward β·log π/|y|).
    """
    r = policy_logps.detach() if ref_logps is None else policy_logps.detach() - ref_logps.detach()
    if lengths is not None:
        r = r / lengths.to(r.dtype)
    return beta * r


@torch.no_grad()
def pairwise_reward_metrics(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor | None = None,
    ref_rejected_logps: Tensor | None = None,
    beta: float = 0.1,
    chosen_lengths: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
) -> dict[str, float]:
    """Batch means of the implicit rewards, named as in ``metrics.jsonl``.

    Keys: ``rewards/chosen``, ``rewards/rejected``, ``rewards/margin`` (chosen − rejected)
    and ``rewards/accuracy`` (fraction of pairs with chosen reward > rejected reward).
    """
    rc = implicit_rewards(policy_chosen_logps, ref_chosen_logps, beta, chosen_lengths)
    rr = implicit_rewards(policy_rejected_logps, ref_rejected_logps, beta, rejected_lengths)
    return {
        "rewards/chosen": float(rc.mean()),
        "rewards/rejected": float(rr.mean()),
        "rewards/margin": float((rc - rr).mean()),
        "rewards/accuracy": float((rc > rr).float().mean()),
    }
