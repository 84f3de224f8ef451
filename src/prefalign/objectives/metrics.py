"""Implicit rewards and the reward metrics logged for them, in one place (no gradients).

Objectives return their implicit rewards with their losses (:class:`ObjectiveOutput`);
:func:`batch_metrics` turns a batch and its output into the per-example values a trainer
averages and logs (train and eval alike), and :func:`pairwise_reward_metrics` /
:func:`reward_margin_metrics` give the same numbers as batch means (``prefalign.eval`` and the
demo use them).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .batches import ListwiseBatch, ObjectiveOutput, PairwiseBatch, UnpairedBatch


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
def reward_margin_values(chosen_rewards: Tensor, rejected_rewards: Tensor) -> dict[str, Tensor]:
    """Per-pair ``rewards/chosen``, ``rewards/rejected``, ``rewards/margin`` (chosen − rejected)
    and ``rewards/accuracy`` (1 where chosen > rejected, else 0), TRL's names."""
    rc, rr = chosen_rewards.detach(), rejected_rewards.detach()
    return {"rewards/chosen": rc, "rewards/rejected": rr, "rewards/margin": rc - rr,
            "rewards/accuracy": (rc > rr).to(rc.dtype)}


@torch.no_grad()
def reward_margin_metrics(chosen_rewards: Tensor, rejected_rewards: Tensor) -> dict[str, float]:
    """Batch means of :func:`reward_margin_values`."""
    return {k: float(v.double().mean()) for k, v in reward_margin_values(chosen_rewards, rejected_rewards).items()}


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
    return reward_margin_metrics(rc, rr)


@torch.no_grad()
def batch_metrics(batch, out: ObjectiveOutput) -> dict[str, Tensor]:
    """The per-example values a trainer logs for ``batch`` and the objective's ``out`` (NaN
    where a value does not apply to an example): log-probs, the objective's implicit rewards
    and their margin and accuracy, and TDPO's sequential KL."""
    if isinstance(batch, PairwiseBatch):
        m = {"logps/chosen": batch.policy_chosen_logps.detach(),
             "logps/rejected": batch.policy_rejected_logps.detach()}
        if out.chosen_rewards is not None:
            m.update(reward_margin_values(out.chosen_rewards, out.rejected_rewards))
        if batch.chosen_seq_kl is not None:
            m.update({"kl/chosen": batch.chosen_seq_kl.detach(), "kl/rejected": batch.rejected_seq_kl.detach()})
        return m
    if isinstance(batch, ListwiseBatch):  # the best- and the worst-scored completion of each list
        scores = batch.scores.to(batch.policy_logps.dtype)
        best = scores.masked_fill(~batch.mask, float("-inf")).argmax(1, keepdim=True)
        worst = scores.masked_fill(~batch.mask, float("inf")).argmin(1, keepdim=True)
        pick = lambda t, i: t.detach().gather(1, i).squeeze(1)  # noqa: E731
        m = {"logps/chosen": pick(batch.policy_logps, best), "logps/rejected": pick(batch.policy_logps, worst)}
        if out.rewards is not None:
            m.update(reward_margin_values(pick(out.rewards, best), pick(out.rewards, worst)))
        return m
    assert isinstance(batch, UnpairedBatch)
    logps = batch.policy_logps.detach()
    m = {"logps/completion": logps}
    if batch.lengths is not None:
        m["logps/per_token"] = logps / batch.lengths.to(logps.dtype)
    if out.rewards is not None:  # an objective that reads the labels: each label's own means
        # (NaN on the other label's rows); TRL's KTO logs them as logps/chosen|rejected
        m["logps/desirable"] = torch.where(batch.labels, logps, logps.new_tensor(float("nan")))
        m["logps/undesirable"] = torch.where(batch.labels, logps.new_tensor(float("nan")), logps)
        nan = torch.full_like(out.rewards, float("nan"))
        m["rewards/desirable"] = torch.where(batch.labels, out.rewards, nan)
        m["rewards/undesirable"] = torch.where(batch.labels, nan, out.rewards)
    return m
