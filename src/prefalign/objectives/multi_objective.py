"""Multi-objective preference optimisation: one preference dimension trained with a DPO loss
whose margin is corrected by the rewards of the other dimensions (MODPO, Zhou et al. 2023:
"Beyond One-Preference-Fits-All Alignment: Multi-Objective Direct Preference Optimization").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import modifiers, params
from .batches import ObjectiveOutput, PairwiseBatch
from .registry import Hyperparameter, objective


@objective(
    name="modpo",
    shape="pairwise",
    needs_reference=True,
    paper="Beyond One-Preference-Fits-All Alignment: Multi-Objective Direct Preference "
          "Optimization",
    formula="−log σ( (β·h − w_r·Δr) / w₀ ),  h = ρ_w − ρ_l,  Δr = the other dimensions' reward "
            "gap r(y_w) − r(y_l) (the margin),  w_r = 1 − w₀ unless given",
    summary="MODPO: DPO on one preference dimension with the other dimensions' reward gap "
            "(a margin column, or score_chosen − score_rejected of their reward model) "
            "subtracted, weighted as the paper's margin form",
    hyperparameters=(
        params.beta(),
        Hyperparameter("modpo_w0", 0.5, "w₀: the weight of the dimension this data ranks",
                       "0.1-0.9", low=0.0, high=1.0, low_open=True),
        Hyperparameter("modpo_other_weight", None,
                       "w_r: the weight of the other dimensions' reward gap (default 1 − w₀, "
                       "the paper's two-dimension case; set 1 when the margin column already "
                       "holds the weighted sum of several)", "0-1", low=0.0),
    ),
    inputs=frozenset({"margin"}),
    margin_from_scores=False,  # the scores rank this dimension: not the others' gap
    modifiers=modifiers.NO_F_DIVERGENCE,
    notes="The paper's loss for the preference of weight w₀ with the other objectives' rewards "
    "r₋₀ (reward models trained beforehand, or any score), w₋₀ᵀ(r₋₀(y_w) − r₋₀(y_l)) = "
    "w_r·Δr: here the pair's margin column holds Δr. score_chosen − score_rejected is not taken "
    "for it (those scores rank the trained dimension, as synth writes them): a pair without a "
    "margin column is refused, naming its row. w₀ = 1 with w_r = 0 is DPO (tested). The loss "
    "is the paper's margin form; the authors' code divides the same way.",
)
def modpo(b: PairwiseBatch, *, beta: float, modpo_w0: float,
          modpo_other_weight: float | None) -> ObjectiveOutput:
    """MODPO: −log σ((β·h − w_r·Δr) / w₀).

    Each preference dimension k of a multi-objective reward Σ w_k r_k is trained in turn: its
    pairs' DPO margin is corrected by what the other dimensions already say about the pair, so
    the policy optimises the weighted combination without an RL loop.
    """
    other = 1.0 - modpo_w0 if modpo_other_weight is None else modpo_other_weight
    gap = b.margin.to(b.policy_chosen_logps.dtype)
    if not bool(torch.isfinite(gap).all()):
        rows = torch.nonzero(~torch.isfinite(gap)).flatten().tolist()[:10]
        raise ValueError(f"margin (the other dimensions' reward gap) must be finite; not at "
                         f"rows {rows}")
    rho_w, rho_l = b.logratios()
    return b.output(-F.logsigmoid((beta * (rho_w - rho_l) - other * gap) / modpo_w0), beta)
