"""Listwise objectives: B prompts, each with a list of K scored completions (Tensor[B, K]).

s_i = β·ρ_i is each completion's implicit reward (optionally per token); ψ_i its label
score (higher is better); ``mask`` marks the valid entries of ragged lists.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from . import params
from .batches import ListwiseBatch, ObjectiveOutput
from .common import log_ratio, per_token
from .registry import Hyperparameter, objective

LENGTH_NORMALIZE = Hyperparameter(
    "length_normalize", False, "use per-token log-ratios ρ/|y| (needs lengths [B, K])"
)


def _rewards(b: ListwiseBatch, beta: float, length_normalize: bool) -> Tensor:
    rho = log_ratio(b.policy_logps, b.ref_logps)
    if length_normalize:
        if b.lengths is None:
            raise ValueError("length_normalize=True needs lengths= (response tokens, Tensor[batch, K])")
        rho = per_token(rho, b.lengths)
    # Padding entries may hold anything (even nan/-inf): zero them so they cannot leak into sums.
    return torch.where(b.mask, beta * rho, torch.zeros_like(rho))


def ranks_desc(key: Tensor, mask: Tensor) -> Tensor:
    """1-based rank of each entry when sorting ``key`` descending within its row (invalid last).

    Ties keep their list order (stable sort).
    """
    k = torch.where(mask, key, torch.full_like(key, -math.inf))
    order = torch.sort(k, dim=-1, descending=True, stable=True).indices
    return torch.argsort(order, dim=-1) + 1


def lambda_weights(scores: Tensor, ranks: Tensor) -> Tensor:
    """LiPO-λ weights Δ_ij = |G_i − G_j|·|1/log2(1+τ_i) − 1/log2(1+τ_j)|, G = 2^ψ − 1; [B, K, K]."""
    gain = torch.pow(2.0, scores) - 1.0
    discount = 1.0 / torch.log2(1.0 + ranks.to(scores.dtype))
    return (gain.unsqueeze(-1) - gain.unsqueeze(-2)).abs() * (discount.unsqueeze(-1) - discount.unsqueeze(-2)).abs()


@objective(
    name="lipo_lambda",
    aliases=("lipo",),
    shape="listwise",
    needs_reference=True,
    paper="LiPO: Listwise Preference Optimization through Learning-to-Rank",
    formula="Σ_{ψ_i > ψ_j} Δ_ij · log(1 + exp(−(s_i − s_j))),  Δ_ij = |G_i − G_j|·|1/log2(1+τ_i) − 1/log2(1+τ_j)|, G = 2^ψ − 1",
    summary="LiPO-λ: pairwise logistic losses over the list, weighted by LambdaRank (NDCG) gains",
    hyperparameters=(
        params.beta(),
        Hyperparameter(
            "lipo_rank_by",
            "policy",
            "ranking τ for the discounts: 'policy' = by the current rewards s (the paper, as "
            "LambdaLoss); 'scores' = by the labels ψ",
            choices=("policy", "scores"),
        ),
        LENGTH_NORMALIZE,
    ),
    inputs=frozenset({"scores"}),
    notes="Per list, summed over pairs (no normalization). The λ weights are detached. At K = 2 "
    "the loss is (2^ψ_w − 2^ψ_l)·(1 − 1/log2 3)·DPO, whatever the ranking.",
    differences=(
        ("LiPO-λ ranking τ", "—", "rank by the current model rewards (LambdaLoss)", "`lipo_rank_by=\"policy\"`",
         "`\"scores\"`"),
    ),
)
def lipo_lambda(b: ListwiseBatch, *, beta: float, lipo_rank_by: str, length_normalize: bool) -> ObjectiveOutput:
    """LiPO-λ: Σ over label-ordered pairs of Δ_ij·softplus(s_j − s_i).

    Alignment as learning-to-rank over a list of responses: every pair with a label
    preference contributes a DPO-style logistic loss, weighted by how much swapping the
    two would change the list's NDCG. Pairs high in the ranking and with large score gaps
    count most. DPO is the list-size-2 case up to a constant weight.
    """
    s = _rewards(b, beta, length_normalize)
    psi = b.scores.to(s.dtype)
    key = s.detach() if lipo_rank_by == "policy" else psi
    with torch.no_grad():
        weights = lambda_weights(psi, ranks_desc(key, b.mask))
        valid = b.mask.unsqueeze(-1) & b.mask.unsqueeze(-2)
        better = (psi.unsqueeze(-1) > psi.unsqueeze(-2)) & valid
        weights = torch.where(better, weights, torch.zeros_like(weights))
    pair_loss = F.softplus(-(s.unsqueeze(-1) - s.unsqueeze(-2)))  # [B, i, j]: i preferred over j
    return ObjectiveOutput((weights * pair_loss).sum(dim=(-1, -2)), rewards=s.detach())


@objective(
    name="plackett_luce",
    aliases=("listwise_dpo", "pl"),
    shape="listwise",
    needs_reference=True,
    paper="Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
    formula="−Σ_k log [exp(s_τ(k)) / Σ_{j ≥ k} exp(s_τ(j))],  τ = order by scores ψ, best first",
    summary="Listwise DPO: Plackett-Luce likelihood of the labelled ranking under the implicit rewards",
    hyperparameters=(params.beta(), LENGTH_NORMALIZE),
    inputs=frozenset({"scores"}),
    notes="The DPO paper's Plackett-Luce generalization (its appendix). Ties in scores are ordered "
    "by list position. At K = 2 it equals DPO exactly.",
)
def plackett_luce(b: ListwiseBatch, *, beta: float, length_normalize: bool) -> ObjectiveOutput:
    """Plackett-Luce DPO: −Σ_k log softmax over the not-yet-chosen items of the next best.

    A ranking is generated by repeatedly choosing the best remaining item with
    probability ∝ exp(reward). With the implicit reward s = β·ρ, maximizing the
    likelihood of the labelled ranking generalizes DPO (K = 2) to full lists.
    """
    rewards = _rewards(b, beta, length_normalize)
    s = rewards.to(torch.promote_types(rewards.dtype, torch.float32))
    psi = b.scores.to(s.dtype)
    order = torch.sort(torch.where(b.mask, psi, torch.full_like(psi, -math.inf)), dim=-1, descending=True, stable=True).indices
    s_sorted = torch.gather(s, -1, order)
    valid = torch.gather(b.mask, -1, order)
    masked = torch.where(valid, s_sorted, torch.full_like(s_sorted, -1e30))
    tail_lse = torch.logcumsumexp(masked.flip(-1), dim=-1).flip(-1)  # log Σ_{j ≥ k} exp(s_j)
    terms = torch.where(valid, tail_lse - s_sorted, torch.zeros_like(s_sorted))
    return ObjectiveOutput(terms.sum(-1).to(b.policy_logps.dtype), rewards=rewards.detach())
