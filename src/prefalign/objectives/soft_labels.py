"""Soft-label objectives: pairs that carry how sure the label is, p = p(chosen ≻ rejected).

A judge's probability (``selfjudge:``), a jury's agreement or a self-test pass share lands in a
pair's ``strength`` column (`prefalign synth`); these objectives train on it instead of treating
every pair as certain.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import modifiers, params
from .batches import ObjectiveOutput, PairwiseBatch
from .registry import objective


@objective(
    name="soft_sigmoid",
    aliases=("osp", "soft_dpo"),
    shape="pairwise",
    needs_reference=True,
    paper="Online Self-Preferring Language Models",
    formula="−[p·log σ(β·Δ) + (1 − p)·log σ(−β·Δ)],  p = the pair's strength, Δ = s_w − s_l",
    summary="soft-preference cross-entropy: DPO's logistic loss against each pair's "
            "preference strength p (OSP; cDPO with a per-pair ε = 1 − p)",
    hyperparameters=(params.beta(),),
    inputs=frozenset({"strength"}),
    modifiers=modifiers.ALL,
    notes="The Bradley-Terry cross-entropy with a soft target: p = 1 is DPO (sigmoid), "
    "p = 1 − ε is cdpo with label_smoothing=ε for one pair, p = 1/2 pulls the margin to 0. "
    "In training, p is each pair's strength column (what synth writes from a pairwise judge's "
    "probability, a jury's agreement or self-tests); a pair without one, or with one outside "
    "[0, 1], is refused naming its row. Unlike the robust loss nothing is divided by 1 − 2ε, "
    "so p = 1/2 is allowed.",
)
def soft_sigmoid(b: PairwiseBatch, *, beta: float) -> ObjectiveOutput:
    """−[p·log σ(β·Δ) + (1 − p)·log σ(−β·Δ)].

    The implicit-reward margin is trained toward the log-odds of p: the loss is minimal at
    β·Δ = log(p / (1 − p)), so a pair judged 60/40 is asked for a small margin and one judged
    certain for an ever larger one, as DPO does.
    """
    p = _strength(b)
    z = beta * b.score_margin()
    return b.output(-(p * F.logsigmoid(z) + (1.0 - p) * F.logsigmoid(-z)), beta)


def _strength(b: PairwiseBatch) -> torch.Tensor:
    p = b.strength.to(b.policy_chosen_logps.dtype)
    bad = ~((p >= 0) & (p <= 1))
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten().tolist()[:10]
        raise ValueError(f"strength must be in [0, 1] (p(chosen ≻ rejected)); not at rows {rows}")
    return p


@objective(
    name="sppo_soft",
    shape="pairwise",
    needs_reference=True,
    paper="Self-Play Preference Optimization for Language Model Alignment",
    formula="(s_w − (p − 1/2)/β)² + (s_l − (1/2 − p)/β)²,  p = the pair's strength",
    summary="SPPO with soft win probabilities: each log-ratio regressed onto its centred win "
            "probability, P(y_w ≻ y_l) = p from the pair's strength",
    hyperparameters=(params.beta(),),
    inputs=frozenset({"strength"}),
    modifiers=modifiers.ALL,
    notes="The paper's loss (ρ_y − η(P̂(y ≻ π) − 1/2))² with η = 1/β, for the two responses of "
    "a pair: P̂(y_w) = p and P̂(y_l) = 1 − p, p the pair's strength column (a judge's or "
    "preference model's win probability; synth writes it). p = 1 is sppo_hard (tested). The "
    "paper estimates P̂(y ≻ π) against several samples of the current policy; with pairs, the "
    "other response of the pair stands in for them.",
)
def sppo_soft(b: PairwiseBatch, *, beta: float) -> ObjectiveOutput:
    """SPPO (soft labels): (s_w − (p − ½)/β)² + (s_l − (½ − p)/β)².

    A pair the judge calls 60/40 asks each log-ratio for a small step up or down; a certain one
    asks for ±1/(2β), as sppo_hard does.
    """
    p = _strength(b)
    s_w, s_l = b.scores()
    return b.output((s_w - (p - 0.5) / beta) ** 2 + (s_l - (0.5 - p) / beta) ** 2, beta)
