"""Training-dynamics diagnostics: pure functions on summed log-probs and per-token statistics.

Every function takes tensors (one value per pair, per sample or per token) and returns a dict of
plain floats, so results go straight into JSON. Log-probs are *summed* over response tokens, as
the engine returns them. Conventions for the pairwise functions: ``*_chosen``/``*_rejected`` are
[N] tensors, one entry per preference pair.

Formulas (π = policy, π_ref = reference, both summed log-probs of a response given its prompt):

- implicit reward (DPO): r(y) = β·(log π(y) − log π_ref(y)); accuracy = mean[r_w > r_l].
- ranking accuracy: mean[log π(y_w) > log π(y_l)]; the length-normalised variant compares
  log π(y)/|y| ("Preference Learning Algorithms Do Not Learn Preference Rankings").
- idealized ranking accuracy (same paper): the optimum of the KL-regularised objective,
  π* ∝ π_ref·exp(r/β) with a Bradley-Terry reward, ranks a pair correctly iff
  π_ref(y_w)/π_ref(y_l) · (α/(1−α))^{1/β} > 1, where α = P(y_w ≻ y_l) is the ground-truth
  preference probability. We evaluate it in log space:
  [log π_ref(y_w) − log π_ref(y_l)] + (1/β)·logit(α) > 0 (strict; a tie counts as wrong).
  α = 1 for a deterministic label (then every pair is ranked correctly), or σ(s_w − s_l) from
  the pair's scores when the data has them. alignment gap = idealized − ranking accuracy.
- KL from samples (y ~ π): k1 = mean[log π(y) − log π_ref(y)] (unbiased, can be negative);
  k3 = mean[(ρ − 1) − log ρ] with ρ = π_ref(y)/π(y) (unbiased and never negative).
- likelihood displacement: Δ(y) = log π(y) − log π_ref(y) for chosen and rejected; the mean
  change and the fraction of pairs where it went down.
- top-k diagnostics ("Understanding Likelihood Over-optimisation in Direct Alignment
  Algorithms"): mean over response tokens of the entropy of the renormalised top-k next-token
  distribution and of the top-k probability mass; both falling are warning signals.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch


def _f(x: torch.Tensor) -> float:
    return float(x.detach().double().cpu())


def _check_pairs(**tensors: torch.Tensor | None) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items() if t is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"pairwise inputs must have one shape, got {shapes}")
    if any(s == (0,) for s in shapes.values()):
        raise ValueError("no pairs to evaluate (all inputs are empty)")


def implicit_reward_metrics(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
                            ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, *,
                            beta: float = 0.1) -> dict[str, float]:
    """DPO's implicit reward r = β·(log π − log π_ref) of chosen and rejected responses.

    Returns ``rewards/chosen``, ``rewards/rejected`` (means), ``rewards/margin`` (mean of
    r_w − r_l) and ``rewards/accuracy`` (fraction of pairs with r_w > r_l), TRL's names.
    """
    from prefalign.objectives import implicit_rewards, reward_margin_metrics

    _check_pairs(a=policy_chosen, b=policy_rejected, c=ref_chosen, d=ref_rejected)
    r_w = implicit_rewards(policy_chosen.double(), ref_chosen.double(), beta)
    r_l = implicit_rewards(policy_rejected.double(), ref_rejected.double(), beta)
    return reward_margin_metrics(r_w, r_l)  # the trainer's metrics, computed in one place


def ranking_accuracy(logps_chosen: torch.Tensor, logps_rejected: torch.Tensor, *,
                     chosen_lengths: torch.Tensor | None = None,
                     rejected_lengths: torch.Tensor | None = None) -> dict[str, float]:
    """Fraction of pairs where the model gives the chosen response the higher log-prob.

    With lengths, also ``ranking_accuracy/length_normalized``: the same comparison of
    per-token mean log-probs log π(y)/|y|.
    """
    _check_pairs(a=logps_chosen, b=logps_rejected, c=chosen_lengths, d=rejected_lengths)
    out = {"ranking_accuracy": _f((logps_chosen > logps_rejected).double().mean())}
    if chosen_lengths is not None and rejected_lengths is not None:
        norm_w = logps_chosen.double() / chosen_lengths.double().clamp(min=1)
        norm_l = logps_rejected.double() / rejected_lengths.double().clamp(min=1)
        out["ranking_accuracy/length_normalized"] = _f((norm_w > norm_l).double().mean())
    return out


def preference_probability(score_chosen: torch.Tensor | None = None,
                           score_rejected: torch.Tensor | None = None, *,
                           n: int | None = None) -> torch.Tensor:
    """Ground-truth P(y_w ≻ y_l): σ(s_w − s_l) from scores, else 1 (a deterministic label)."""
    if score_chosen is None or score_rejected is None:
        if n is None:
            raise ValueError("give scores or the number of pairs n")
        return torch.ones(n, dtype=torch.float64)
    return torch.sigmoid(score_chosen.double() - score_rejected.double())


def idealized_ranking_accuracy(ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, *,
                               beta: float, preference_prob: torch.Tensor | None = None
                               ) -> dict[str, float]:
    """Ranking accuracy of the idealized policy π* ∝ π_ref·exp(r*/β) (module docstring).

    A pair counts as correct iff (log π_ref(y_w) − log π_ref(y_l)) + logit(α)/β > 0, with
    α = ``preference_prob`` (default 1: every pair correct). Also returns the fraction of
    pairs the reference itself ranks correctly.
    """
    _check_pairs(a=ref_chosen, b=ref_rejected, c=preference_prob)
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    alpha = (torch.ones_like(ref_chosen, dtype=torch.float64) if preference_prob is None
             else preference_prob.double())
    if ((alpha < 0) | (alpha > 1)).any():
        raise ValueError("preference probabilities must lie in [0, 1]")
    ref_diff = ref_chosen.double() - ref_rejected.double()
    bonus = torch.special.logit(alpha) / beta          # +inf for α = 1, −inf for α = 0
    score = ref_diff + bonus
    return {"idealized_ranking_accuracy": _f((score > 0).double().mean()),
            "reference_ranking_accuracy": _f((ref_diff > 0).double().mean())}


def alignment_gap(idealized: float, actual: float) -> float:
    """Idealized ranking accuracy minus the policy's observed ranking accuracy."""
    return idealized - actual


def pair_difficulty(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
                    ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, indices, *,
                    hardest: int = 10) -> tuple[dict[str, float], list[dict]]:
    """Per-pair difficulty from the reference's ranking errors ("Preference Learning Algorithms
    Do Not Learn Preference Rankings"): a pair's difficulty is how far the reference ranks it
    wrong, ref margin = log π_ref(y_w) − log π_ref(y_l) (below 0: ranked wrong). Returns the
    share the reference ranks wrong, the share of those the policy now ranks right
    (``fixed``) and of the reference's right ones it now ranks wrong (``broken``), and the
    ``hardest`` pairs (lowest reference margin) with both margins; ``indices`` name the pairs
    (their rows in the data, from 0)."""
    _check_pairs(a=policy_chosen, b=policy_rejected, c=ref_chosen, d=ref_rejected)
    ref_margin = (ref_chosen.double() - ref_rejected.double()).tolist()
    pol_margin = (policy_chosen.double() - policy_rejected.double()).tolist()
    wrong = [i for i, m in enumerate(ref_margin) if m < 0]
    right = [i for i, m in enumerate(ref_margin) if m > 0]
    n = len(ref_margin)
    out = {"difficulty/reference_wrong": len(wrong) / n,
           "difficulty/fixed": (sum(pol_margin[i] > 0 for i in wrong) / len(wrong)
                                if wrong else 0.0),
           "difficulty/broken": (sum(pol_margin[i] < 0 for i in right) / len(right)
                                 if right else 0.0)}
    order = sorted(range(n), key=lambda i: ref_margin[i])[:hardest]
    rows = [{"pair": int(indices[i]), "reference_margin": ref_margin[i],
             "policy_margin": pol_margin[i], "policy_ranks_it_right": pol_margin[i] > 0}
            for i in order]
    return out, rows


def kl_from_samples(policy_logps: torch.Tensor, ref_logps: torch.Tensor) -> dict[str, float]:
    """KL(π ‖ π_ref) estimated from responses sampled from π (one summed log-prob each).

    ``kl/k1`` = mean(log π − log π_ref); ``kl/k3`` = mean(ρ − 1 − log ρ), ρ = π_ref/π.
    """
    _check_pairs(a=policy_logps, b=ref_logps)
    log_ratio = policy_logps.double() - ref_logps.double()
    k3 = torch.expm1(-log_ratio) + log_ratio
    return {"kl/k1": _f(log_ratio.mean()), "kl/k3": _f(k3.mean()),
            "kl/samples": float(log_ratio.numel())}


def length_stats(lengths: Sequence[int] | torch.Tensor, *, prefix: str = "length") -> dict:
    """Mean, standard deviation, min, median, max of response lengths (in tokens)."""
    t = torch.as_tensor(lengths, dtype=torch.float64).reshape(-1)
    if t.numel() == 0:
        raise ValueError("no lengths given")
    return {f"{prefix}/mean": _f(t.mean()),
            f"{prefix}/std": _f(t.std(unbiased=False)),
            f"{prefix}/min": _f(t.min()), f"{prefix}/median": _f(t.median()),
            f"{prefix}/max": _f(t.max())}


def likelihood_displacement(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
                            ref_chosen: torch.Tensor, ref_rejected: torch.Tensor
                            ) -> dict[str, float]:
    """How chosen and rejected log-probs moved from the reference's.

    ``displacement/chosen_delta`` = mean(log π(y_w) − log π_ref(y_w)) and
    ``displacement/chosen_decreased`` = fraction of pairs where it is < 0 (likelihood
    displacement when large); the same for rejected, and the fraction where both went down.
    """
    _check_pairs(a=policy_chosen, b=policy_rejected, c=ref_chosen, d=ref_rejected)
    d_w = policy_chosen.double() - ref_chosen.double()
    d_l = policy_rejected.double() - ref_rejected.double()
    return {"displacement/chosen_delta": _f(d_w.mean()),
            "displacement/chosen_decreased": _f((d_w < 0).double().mean()),
            "displacement/rejected_delta": _f(d_l.mean()),
            "displacement/rejected_decreased": _f((d_l < 0).double().mean()),
            "displacement/both_decreased": _f(((d_w < 0) & (d_l < 0)).double().mean())}


def token_stat_summary(stats: Mapping[str, torch.Tensor], sequence_index: torch.Tensor, *,
                       num_responses: int,
                       names: Sequence[str] = ("chosen", "rejected")) -> dict[str, float]:
    """Mean of each per-token statistic over all response tokens, and per response slot.

    ``stats`` maps a name (``topk_entropy``, ``topk_mass``, ``entropy``…) to a flat per-token
    tensor aligned with ``sequence_index`` (= example * num_responses + slot), as the engine's
    `SequenceLogps` gives them. Slot k is labelled ``names[k]`` (pairwise: chosen, rejected).
    """
    slot = sequence_index % num_responses
    out = {}
    for key, values in stats.items():
        values = values.double()
        if values.shape != sequence_index.shape:
            raise ValueError(f"statistic {key!r} has shape {tuple(values.shape)}, "
                             f"sequence_index {tuple(sequence_index.shape)}")
        if values.numel() == 0:
            continue
        out[f"{key}/all"] = _f(values.mean())
        for k in range(num_responses):
            sel = values[slot == k]
            if sel.numel():
                label = names[k] if k < len(names) else str(k)
                out[f"{key}/{label}"] = _f(sel.mean())
    return out
