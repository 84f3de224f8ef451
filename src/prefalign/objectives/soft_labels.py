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
    p = b.strength.to(b.policy_chosen_logps.dtype)
    bad = ~((p >= 0) & (p <= 1))
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten().tolist()[:10]
        raise ValueError(f"strength must be in [0, 1] (p(chosen ≻ rejected)); not at rows {rows}")
    z = beta * b.score_margin()
    return b.output(-(p * F.logsigmoid(z) + (1.0 - p) * F.logsigmoid(-z)), beta)
