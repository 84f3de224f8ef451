"""Shared pieces the objectives are built from, each written once.

Notation used across the package (all per example, log-probs summed over response tokens):

* π_w, π_l  policy log-probs of the chosen / rejected response; ref_w, ref_l the reference's.
* ρ = π − ref   the log-ratio ("implicit reward" up to β).
* s = f′-score of ρ (TRL's step 1; ``reverse_kl`` gives s = ρ).  Δ = s_w − s_l.
* h = ρ_w − ρ_l   the DPO logit before β (Δ under reverse KL).
* |y|  response length in tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

F_DIVERGENCES = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")


def log_ratio(policy_logps: Tensor, ref_logps: Tensor) -> Tensor:
    """ρ = log π(y|x) − log π_ref(y|x)."""
    return policy_logps - ref_logps


def f_divergence_scores(logratios: Tensor, kind: str = "reverse_kl", alpha: float = 0.5) -> Tensor:
    """Turn log-ratios ρ into f′-scores s, as TRL's ``f_divergence_type`` (f-DPO).

    * reverse_kl: s = ρ (plain DPO)
    * forward_kl: s = −exp(−ρ)
    * js_divergence: s = log σ(ρ)   (the paper's log 2 constant cancels in s_w − s_l)
    * alpha_divergence: s = exp((α−1)ρ)/(α−1); the exponent is clamped (:func:`_exponent_limit`)
      so that s stays finite in the log-probs' dtype; at α = 1 it is ρ (the limit, up to a
      constant that cancels in s_w − s_l).
    * alpha_divergence_paper: the f-DPO paper's f′(u) = (1 − u^−α)/α, s = (1 − exp(−αρ))/α
      (α → 0 is ρ); equal to alpha_divergence with 1 − α up to the constant 1/α, which cancels
      in s_w − s_l but not where a score is used on its own (NCA, SPPO, BCO, per-token forms).
    """
    if kind == "reverse_kl":
        return logratios
    if kind == "forward_kl":
        return -torch.exp(-logratios)
    if kind == "js_divergence":
        return F.logsigmoid(logratios)
    if kind == "alpha_divergence":
        if abs(alpha - 1.0) < 1e-6:
            return logratios
        limit = _exponent_limit(logratios.dtype, alpha - 1.0)
        work = torch.promote_types(logratios.dtype, torch.float32)
        t = torch.clamp((alpha - 1.0) * logratios.to(work), max=limit)
        return (torch.exp(t) / (alpha - 1.0)).to(logratios.dtype)
    if kind == "alpha_divergence_paper":
        if abs(alpha) < 1e-6:
            return logratios
        limit = _exponent_limit(logratios.dtype, alpha)
        work = torch.promote_types(logratios.dtype, torch.float32)
        t = torch.clamp(-alpha * logratios.to(work), max=limit)
        return (-torch.expm1(t) / alpha).to(logratios.dtype)
    raise ValueError(f"f_divergence_type must be one of {F_DIVERGENCES}, got {kind!r}")


def _exponent_limit(dtype: torch.dtype, divisor: float) -> float:
    """The largest exponent t for which exp(t) / |divisor| is finite in ``dtype`` (with room to
    spare), and at most 80: e.g. about 10.4 for float16 at α = 0.5, 73.9 for float32 at
    |α − 1| = 1e-6. A fixed clamp (11 for float16, 80 otherwise) overflowed to ±inf, and the
    DPO loss to NaN, for most α in float16 and for α near the limit in float32."""
    return min(80.0, math.log(torch.finfo(dtype).max * abs(divisor)) - 1.0)


def smoothed_logistic(z: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Label-smoothed logistic loss: −(1−ε) log σ(z) − ε log σ(−z) (cDPO's form)."""
    loss = -F.logsigmoid(z)
    if label_smoothing:
        loss = (1.0 - label_smoothing) * loss - label_smoothing * F.logsigmoid(-z)
    return loss


def per_token(values: Tensor, lengths: Tensor) -> Tensor:
    """Length normalization: values / |y| (lengths as token counts)."""
    return values / lengths.to(values.dtype)


def nll(policy_logps: Tensor, lengths: Tensor) -> Tensor:
    """Token-mean negative log-likelihood per example: −π/|y|."""
    return -per_token(policy_logps, lengths)


def log_odds(avg_logps: Tensor) -> Tensor:
    """log(p/(1−p)) with p = exp(mean token log-prob), computed stably (ORPO/ASFT).

    log(1−p) = log(−expm1(ā)); ā is clamped just below 0 so p = 1 stays finite.
    """
    a = torch.clamp(avg_logps, max=-1e-6)
    return a - torch.log(-torch.expm1(a))


def sorted_batch(values: Tensor) -> Tensor:
    """Values sorted ascending along the batch dimension (AOT's batch-wise transport)."""
    return torch.sort(values, dim=0).values
