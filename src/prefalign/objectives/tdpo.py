"""TDPO: DPO with a token-level forward-KL margin (the sequential KL per response, computed by
the engine against the reference model: batch fields ``chosen_seq_kl`` / ``rejected_seq_kl``)."""

from __future__ import annotations

import torch.nn.functional as F

from . import modifiers, params
from .batches import ObjectiveOutput, PairwiseBatch
from .registry import Hyperparameter, objective
from .token_level import TDPO_INPUTS

TDPO_PAPER = "Token-level Direct Preference Optimization"


@objective(
    name="tdpo1",
    shape="pairwise",
    needs_reference=True,
    paper=TDPO_PAPER,
    formula="−log σ(β·(h − (KL_l − KL_w))),  KL = Σ_t KL(π_ref ‖ π) per response",
    summary="TDPO1: DPO with a token-level forward-KL margin term",
    hyperparameters=(params.beta(),),
    inputs=TDPO_INPUTS,
    modifiers=modifiers.LD_ONLY,
)
def tdpo1(b: PairwiseBatch, *, beta: float) -> ObjectiveOutput:
    """TDPO1: −log σ(β(ρ_w − ρ_l) − β(D_SeqKL(y_l) − D_SeqKL(y_w))).

    Viewing generation as a token-level MDP, TDPO constrains each token's distribution
    with a forward KL to the reference. The resulting Bradley-Terry objective subtracts
    the difference of the two responses' sequential KLs from the DPO margin, which
    regulates KL growth and keeps generation diverse.
    """
    rho_w, rho_l = b.logratios()
    kl_w, kl_l = b.chosen_seq_kl, b.rejected_seq_kl
    return b.output(-F.logsigmoid(beta * ((rho_w - rho_l) - (kl_l - kl_w))), beta)


@objective(
    name="tdpo2",
    aliases=("tdpo",),
    shape="pairwise",
    needs_reference=True,
    paper=TDPO_PAPER,
    formula="−log σ(β·(h − α·(KL_l − sg(KL_w)))),  sg = stop-gradient",
    summary="TDPO2: TDPO1 with a weighted KL term and no gradient through the chosen KL",
    hyperparameters=(
        params.beta(),
        Hyperparameter("tdpo_alpha", 0.5, "α: weight of the sequential-KL margin", "0.1-1 (paper: 0.5)", low=0.0),
    ),
    inputs=TDPO_INPUTS,
    modifiers=modifiers.LD_ONLY,
    notes="The stop-gradient on the chosen KL follows the paper and its code.",
)
def tdpo2(b: PairwiseBatch, *, beta: float, tdpo_alpha: float) -> ObjectiveOutput:
    """TDPO2: −log σ(β(ρ_w − ρ_l) − αβ(D_SeqKL(y_l) − sg(D_SeqKL(y_w)))).

    TDPO1's KL term can grow the chosen response's KL too; TDPO2 stops the gradient
    through the chosen KL and weights the term by α, giving finer control over the
    KL of the rejected response.
    """
    rho_w, rho_l = b.logratios()
    kl_w, kl_l = b.chosen_seq_kl, b.rejected_seq_kl
    return b.output(-F.logsigmoid(beta * ((rho_w - rho_l) - tdpo_alpha * (kl_l - kl_w.detach()))), beta)
