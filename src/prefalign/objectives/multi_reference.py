"""MRPO: DPO against several reference models at once (Le et al., "Multi-Reference Preference
Optimization for Large Language Models", AAAI 2025).

The KL-regularised objective with a weighted sum of KLs to R references, Σ_k α_k KL(π ‖ π_k),
has the α-weighted geometric mixture Π_k π_k^α_k as its reference; MRPO trains against a
closed-form lower bound of its log-probability (Jensen on the concave log),

    log π_ref(y) = −log Σ_k α_k / π_k(y)    ≤    Σ_k α_k log π_k(y),

with two safeguards from the paper:

* **CTRO** (clipped trust-region optimisation): each further reference's log-prob is clipped
  into a band around the main reference's, l_k ∈ [l_0·(1 + η), l_0·(1 − η)] (log-probs are
  ≤ 0), so a reference far from the main one cannot pull the policy away. The band's width is
  split between the two responses by their share of the references' mean log-prob:
  η_w = η·|b_w| / (|b_w| + |b_l|), η_l = η − η_w (b = the mean over references).
* **ARWC** (adaptive reference weighting coefficients): with ``ref_weight`` unset, each pair
  weighs reference k by how far apart it puts the two responses, α_k ∝ |l_k(y_w) − l_k(y_l)|
  (before clipping), so a reference that separates the pair more counts more.

The main reference is the run's first reference model (``--ref-model``, default the starting
policy); the further ones come from ``--ref-model`` given again, each through the reference
cache. Choices where the paper's text was not at hand: the authors' public code handles two
references; we extend its rules to R (the band and the mean over all references, the weights
normalised over all); their code attaches the first reference's confidence share to the main
reference's term, where ARWC's stated aim (a more discriminative reference weighs more) gives
each reference its own share, which is what we do. With one reference, or identical ones, the
loss is DPO's (tested).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from . import params
from .batches import ObjectiveOutput, PairwiseBatch
from .registry import Hyperparameter, objective

EXTRA_FIELDS = frozenset({"ref_extra_chosen_logps", "ref_extra_rejected_logps"})


def reference_weights(chosen: Tensor, rejected: Tensor, ref_weight: float | None) -> Tensor:
    """α [B, R] over the R references (main first): ARWC's |l_k(y_w) − l_k(y_l)| shares, or
    the main one's fixed ``ref_weight`` with the others sharing the rest equally."""
    r = chosen.shape[1]
    if ref_weight is None:
        gap = (chosen - rejected).abs()
        total = gap.sum(dim=1, keepdim=True)
        # no reference separates the pair: weigh them equally rather than divide by 0
        return torch.where(total > 0, gap / total.clamp_min(1e-30), torch.full_like(gap, 1 / r))
    rest = (1.0 - ref_weight) / (r - 1)
    row = [ref_weight] + [rest] * (r - 1)
    return torch.tensor(row, dtype=chosen.dtype, device=chosen.device).expand_as(chosen)


def clip_to_main(logps: Tensor, eta: Tensor) -> Tensor:
    """CTRO: references 1.. [B, R] clipped into [l_0·(1 + η), l_0·(1 − η)] (η [B] per pair)."""
    main = logps[:, :1]
    low, high = main * (1 + eta[:, None]), main * (1 - eta[:, None])
    return torch.cat([main, torch.minimum(torch.maximum(logps[:, 1:], low), high)], dim=1)


def combined_reference(chosen: Tensor, rejected: Tensor, *, eta: float, adaptive_eta: bool,
                       ref_weight: float | None) -> tuple[Tensor, Tensor]:
    """The combined reference's log-probs (ref_w, ref_l) [B] from every reference's [B, R]
    (main first): −log Σ_k α_k exp(−l_k) after CTRO's clipping."""
    alpha = reference_weights(chosen, rejected, ref_weight)
    if adaptive_eta:
        b_w, b_l = chosen.mean(dim=1).abs(), rejected.mean(dim=1).abs()
        share = torch.where(b_w + b_l > 0, b_w / (b_w + b_l).clamp_min(1e-30),
                            torch.full_like(b_w, 0.5))
        eta_w, eta_l = eta * share, eta * (1 - share)
    else:
        eta_w = eta_l = torch.full_like(chosen[:, 0], eta)
    log_alpha = torch.log(alpha)  # −inf for a zero weight: that reference drops out

    def combine(logps: Tensor, band: Tensor) -> Tensor:
        return -torch.logsumexp(log_alpha - clip_to_main(logps, band), dim=1)

    return combine(chosen, eta_w), combine(rejected, eta_l)


def _all_references(b: PairwiseBatch) -> tuple[Tensor, Tensor]:
    if b.ref_extra_chosen_logps is None or b.ref_extra_rejected_logps is None \
            or b.ref_chosen_logps is None:
        raise ValueError("mrpo needs two or more reference models: the main one's log-probs "
                         "(ref_*_logps) and the others' (ref_extra_*_logps, [B, R−1]); in "
                         "training give --ref-model twice or more")
    chosen = torch.cat([b.ref_chosen_logps[:, None], b.ref_extra_chosen_logps], dim=1)
    rejected = torch.cat([b.ref_rejected_logps[:, None], b.ref_extra_rejected_logps], dim=1)
    return chosen.to(b.policy_chosen_logps.dtype), rejected.to(b.policy_chosen_logps.dtype)


@objective(
    name="mrpo",
    aliases=("multi_reference",),
    shape="pairwise",
    needs_reference=True,
    paper="Multi-Reference Preference Optimization for Large Language Models",
    formula="−log σ(β·[(π_w − ref_w) − (π_l − ref_l)]),  ref = −log Σ_k α_k·exp(−clip(l_k))",
    summary="DPO against several references: the Jensen lower bound of their α-weighted "
            "geometric mixture, each further reference clipped near the main one (CTRO), "
            "α from each reference's confidence on the pair (ARWC) or fixed",
    hyperparameters=(
        params.beta(),
        params.label_smoothing(),
        Hyperparameter("mrpo_eta", 0.1, "CTRO's clipping rate η: a further reference's "
                       "log-prob is kept within η·|main's| of the main reference's", "0.1 "
                       "(the authors' runs)", low=0.0, high=1.0),
        Hyperparameter("mrpo_adaptive_eta", True, "split η between chosen and rejected by "
                       "their share of the references' mean log-prob (the paper's adaptive "
                       "band); False: η on both"),
        Hyperparameter("mrpo_ref_weight", None, "the main reference's weight α_0, the others "
                       "sharing 1 − α_0 equally; None: ARWC's per-pair weights", "None",
                       low=0.0, high=1.0),
    ),
    inputs=EXTRA_FIELDS,
    notes="The main reference is the first --ref-model (default: the starting policy), the "
    "others are the further --ref-model; every one goes through the reference cache. With a "
    "single reference (R = 1) or identical ones the combined reference is that reference and "
    "the loss is DPO's; mrpo_ref_weight=1 is DPO against the main one (tested). label_smoothing "
    "is cDPO's, as in the authors' code (which runs TRL's DPO loss on the combined reference).",
)
def mrpo(b: PairwiseBatch, *, beta: float, label_smoothing: float, mrpo_eta: float,
         mrpo_adaptive_eta: bool, mrpo_ref_weight: float | None) -> ObjectiveOutput:
    """−log σ(β·[(π_w − ref_w) − (π_l − ref_l)]) with ref = −log Σ_k α_k·exp(−clip(l_k)).

    DPO's (label-smoothed) logistic loss with the combined reference in place of one: the
    policy is held near what the references agree on, a reference that separates the pair
    more counting more, and none allowed far from the main one.
    """
    chosen, rejected = _all_references(b)
    ref_w, ref_l = combined_reference(chosen, rejected, eta=mrpo_eta,
                                      adaptive_eta=mrpo_adaptive_eta, ref_weight=mrpo_ref_weight)
    combined = dataclasses.replace(b, ref_chosen_logps=ref_w, ref_rejected_logps=ref_l)
    z = beta * combined.score_margin()
    losses = -(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    return combined.output(losses, beta)
