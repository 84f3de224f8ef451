"""From the engine's log-probs to per-example losses and the logged metrics.

This is the one place that knows how each data shape maps onto the objectives' entry points:
pairwise examples are (chosen, rejected) = responses (0, 1); unpaired examples carry their
completion as response 0 and, for objectives with a KL reference point (KTO), a mismatched
completion as response 1; listwise examples hold K responses with scores; SFT uses response 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from prefalign import objectives
from prefalign.engine.forward import SequenceLogps


@dataclass
class StepLoss:
    losses: torch.Tensor  # [E] per-example losses (differentiable)
    metrics: dict[str, torch.Tensor]  # per-example values to average for logging, [E] each


def _uses_tokens(spec, hyperparameters) -> bool:
    hp = {**spec.defaults, **hyperparameters}
    return bool(hp.get("ld_alpha") not in (None, 1.0) or hp.get("use_weighting"))


def _token_inputs(spec, hyperparameters, policy: SequenceLogps, ref) -> dict[str, torch.Tensor]:
    """Per-token tensors for LD-DPO (``ld_alpha``) and WPO (``use_weighting``), [E, T] each."""
    if not _uses_tokens(spec, hyperparameters):
        return {}
    padded, mask = policy.padded()
    out = dict(chosen_token_logps=padded[:, 0], rejected_token_logps=padded[:, 1],
               chosen_token_mask=mask[:, 0], rejected_token_mask=mask[:, 1])
    if ref is not None:
        ref_padded, _ = ref.padded()
        out.update(ref_chosen_token_logps=ref_padded[:, 0].to(padded.dtype),
                   ref_rejected_token_logps=ref_padded[:, 1].to(padded.dtype))
    if "log_sum_p2" in policy.stats:
        sq, _ = policy.padded(policy.stats["log_sum_p2"])
        out.update(chosen_token_log_sumsq=sq[:, 0], rejected_token_log_sumsq=sq[:, 1])
    return out


TOKEN_KL_INPUTS = frozenset({"chosen_seq_kl", "rejected_seq_kl"})


def needs_token_kl(spec) -> bool:
    """TDPO: the objective takes each response's summed per-token KL(π_ref ‖ π)."""
    return bool(TOKEN_KL_INPUTS & set(spec.inputs))


def needed_statistics(objective: str, hyperparameters: dict[str, Any]) -> tuple[str, ...]:
    """Per-token statistics the engine must compute for this objective (WPO's log Σp²)."""
    spec = objectives.get(objective)
    if {**spec.defaults, **hyperparameters}.get("use_weighting"):
        return ("log_sum_p2",)
    return ()


def compute_step_loss(objective: str, hyperparameters: dict[str, Any], policy: SequenceLogps,
                      reference: SequenceLogps | None, examples: Sequence) -> StepLoss:
    spec = objectives.get(objective)
    logps, lengths = policy.logps, policy.lengths.to(policy.logps.dtype)
    ref = None if reference is None else reference.logps.to(logps.device, logps.dtype)
    beta = float({**spec.defaults, **hyperparameters}.get("beta") or 0.1)
    if spec.shape == "pairwise":
        extra = _token_inputs(spec, hyperparameters, policy, reference)
        wanted = set(spec.inputs) | set(getattr(spec, "optional_inputs", ()))
        if TOKEN_KL_INPUTS & wanted:
            if policy.kl is None:
                raise ValueError(f"objective {objective!r} needs the per-token KL against the "
                                 "reference; run the policy with kl_reference=")
            extra.update(chosen_seq_kl=policy.kl[:, 0], rejected_seq_kl=policy.kl[:, 1])
        if "margin" in wanted:
            extra["margin"] = torch.tensor([ex.margin or 0.0 for ex in examples],
                                           dtype=logps.dtype, device=logps.device)
        losses = objectives.compute(
            objective, logps[:, 0], logps[:, 1],
            None if ref is None else ref[:, 0], None if ref is None else ref[:, 1],
            chosen_lengths=lengths[:, 0], rejected_lengths=lengths[:, 1],
            **hyperparameters, **extra)
        metrics = _pair_metrics(logps[:, 0], logps[:, 1], ref, lengths, beta)
        if policy.kl is not None:
            metrics.update({"kl/chosen": policy.kl[:, 0].detach(),
                            "kl/rejected": policy.kl[:, 1].detach()})
        return StepLoss(losses, metrics)
    if spec.shape == "listwise":
        scores = torch.tensor([list(ex.scores) for ex in examples], dtype=logps.dtype,
                              device=logps.device)
        mask = policy.lengths > 0
        losses = objectives.compute_listwise(objective, logps, ref, scores=scores, lengths=lengths,
                                             mask=mask, **hyperparameters)
        best = scores.masked_fill(~mask, float("-inf")).argmax(1, keepdim=True)
        worst = scores.masked_fill(~mask, float("inf")).argmin(1, keepdim=True)
        pick = lambda t, i: None if t is None else t.gather(1, i).squeeze(1)  # noqa: E731
        return StepLoss(losses, _pair_metrics(pick(logps, best), pick(logps, worst),
                                              None if ref is None else torch.cat([pick(ref, best)[:, None], pick(ref, worst)[:, None]], 1),
                                              torch.cat([pick(lengths, best)[:, None], pick(lengths, worst)[:, None]], 1), beta))
    # unpaired and sft: response 0 is the completion
    labels = torch.tensor([bool(ex.label) if ex.label is not None else True for ex in examples],
                          device=logps.device)
    kwargs = dict(hyperparameters)
    if {"kl_logps", "ref_kl_logps"} & (set(spec.inputs) | set(getattr(spec, "optional_inputs", ()))) \
            and logps.shape[1] > 1:
        kwargs.update(kl_logps=logps[:, 1].detach(),
                      ref_kl_logps=None if ref is None else ref[:, 1])
    losses = objectives.compute_unpaired(objective, logps[:, 0], labels,
                                         None if ref is None else ref[:, 0], lengths[:, 0], **kwargs)
    metrics = {"logps/completion": logps[:, 0].detach(),
               "logps/per_token": (logps[:, 0] / lengths[:, 0]).detach()}
    if ref is not None:
        reward = beta * (logps[:, 0].detach() - ref[:, 0])
        metrics["rewards/desirable"] = torch.where(labels, reward, torch.nan)
        metrics["rewards/undesirable"] = torch.where(labels, torch.nan, reward)
    return StepLoss(losses, metrics)


def _pair_metrics(chosen, rejected, ref, lengths, beta) -> dict[str, torch.Tensor]:
    chosen, rejected = chosen.detach(), rejected.detach()
    if ref is not None:
        rc, rr = beta * (chosen - ref[:, 0]), beta * (rejected - ref[:, 1])
    else:  # reference-free: the length-normalised implicit reward (SimPO's)
        rc, rr = beta * chosen / lengths[:, 0], beta * rejected / lengths[:, 1]
    return {"logps/chosen": chosen, "logps/rejected": rejected, "rewards/chosen": rc,
            "rewards/rejected": rr, "rewards/margin": rc - rr,
            "rewards/accuracy": (rc > rr).to(chosen.dtype)}
