"""Pairwise objectives without a reference model: SimPO, CPO, ORPO, ASFT.

π̄ = π/|y| is the mean token log-prob (length-normalized log-likelihood). The implicit rewards
are TRL's: β·π̄ for SimPO and ORPO (and ASFT), β·π for CPO.
"""

from __future__ import annotations

import torch.nn.functional as F

from . import modifiers, params
from .batches import ObjectiveOutput, PairwiseBatch
from .common import log_odds, nll, per_token, smoothed_logistic
from .registry import Hyperparameter, objective


@objective(
    name="simpo",
    shape="pairwise",
    needs_reference=False,
    needs_lengths=True,
    paper="SimPO: Simple Preference Optimization with a Reference-Free Reward",
    formula="−(1−ε) log σ(β(π̄_w − π̄_l) − γ) − ε log σ(−(β(π̄_w − π̄_l) − γ)),  π̄ = π/|y|",
    summary="SimPO: logistic loss on the average log-prob margin with a target margin γ",
    hyperparameters=(
        params.beta(2.0, "reward scale on the mean token log-prob", "2-10 (paper)"),
        Hyperparameter("simpo_gamma", 1.0, "γ: target reward margin (absolute, as TRL's CPOTrainer)", "0.5-1.6 (paper)", low=0.0),
        params.label_smoothing(),
    ),
    modifiers=modifiers.NO_F_DIVERGENCE,
    notes="TRL (CPOTrainer, loss_type='simpo') uses beta=0.1, simpo_gamma=0.5 as defaults; the "
    "defaults here are the SimPO paper's range (β=2, γ=1). simpo_gamma is the margin itself, "
    "not the γ/β ratio.",
    differences=(
        ("SimPO defaults", "CPOTrainer: β = 0.1, γ = 0.5", "β ≈ 2–10, γ ≈ 0.5–1.6",
         "β = 2, `simpo_gamma` = 1 (γ is the margin itself, as TRL)", "any"),
        ("Implicit rewards without a reference", "CPOTrainer: β·π (β·π/\\|y\\| for SimPO); ORPOTrainer: β·π/\\|y\\|",
         "—", "the same (logged as `rewards/*`)", "—"),
    ),
)
def simpo(b: PairwiseBatch, *, beta: float, simpo_gamma: float, label_smoothing: float) -> ObjectiveOutput:
    """SimPO: −log σ(β(π_w/|y_w| − π_l/|y_l|) − γ), optionally label-smoothed.

    The reward is the policy's own average log-likelihood, which is what decoding ranks
    by, so training and generation agree; no reference model is needed. The target
    margin γ asks the chosen response to win by a clear amount.
    """
    len_w, len_l = b.lengths()
    z = beta * (per_token(b.policy_chosen_logps, len_w) - per_token(b.policy_rejected_logps, len_l)) - simpo_gamma
    return b.output(smoothed_logistic(z, label_smoothing), beta, per_token_reward=True)


@objective(
    name="cpo",
    shape="pairwise",
    needs_reference=False,
    needs_lengths=True,
    paper="Contrastive Preference Optimization: Pushing the Boundaries of LLM Performance in Machine Translation",
    formula="−(1−ε) log σ(β(π_w − π_l)) − ε log σ(−β(π_w − π_l)) + α·(−π_w/|y_w|)",
    summary="CPO: reference-free DPO on summed log-probs plus an NLL term on the chosen response",
    hyperparameters=(
        params.beta(),
        Hyperparameter("cpo_alpha", 1.0, "α: weight of the NLL term on the chosen response", "0-1", low=0.0),
        params.label_smoothing(),
    ),
    modifiers=modifiers.NO_F_DIVERGENCE,
    notes="TRL's CPOTrainer (loss_type='sigmoid'). The NLL is the per-example token mean; "
    "TRL's is the batch token mean (equal when chosen lengths are equal).",
)
def cpo(b: PairwiseBatch, *, beta: float, cpo_alpha: float, label_smoothing: float) -> ObjectiveOutput:
    """CPO: −log σ(β(π_w − π_l)) + α·NLL(y_w).

    DPO with a uniform reference (the reference terms cancel), which saves its memory
    and compute, plus a behavior-cloning term on the preferred response so the policy
    stays on the data distribution instead of only separating the pair.
    """
    len_w, _ = b.lengths()
    z = beta * (b.policy_chosen_logps - b.policy_rejected_logps)
    return b.output(smoothed_logistic(z, label_smoothing) + cpo_alpha * nll(b.policy_chosen_logps, len_w), beta)


@objective(
    name="orpo",
    shape="pairwise",
    needs_reference=False,
    needs_lengths=True,
    paper="ORPO: Monolithic Preference Optimization without Reference Model",
    formula="−π_w/|y_w| − λ·log σ(log odds(y_w) − log odds(y_l)),  odds = p/(1−p), p = exp(π/|y|)",
    summary="ORPO: SFT loss plus an odds-ratio penalty, in one stage without a reference",
    hyperparameters=(
        params.beta(0.1, "λ: weight of the odds-ratio term (TRL calls it beta)", "0.05-1", zero_ok=True),
    ),
    modifiers=modifiers.NO_F_DIVERGENCE,
    notes="TRL's ORPOTrainer names λ 'beta'. Per-example token-mean NLL.",
)
def orpo(b: PairwiseBatch, *, beta: float) -> ObjectiveOutput:
    """ORPO: NLL(y_w) − λ·log σ(log odds_w − log odds_l), odds from mean token likelihoods.

    Supervised fine-tuning alone raises the likelihood of rejected-style responses too.
    ORPO adds a weak penalty on the odds ratio of chosen over rejected, so preference
    alignment happens during SFT itself, with no reference model and no separate stage.
    """
    len_w, len_l = b.lengths()
    avg_w, avg_l = per_token(b.policy_chosen_logps, len_w), per_token(b.policy_rejected_logps, len_l)
    return b.output(-avg_w - beta * F.logsigmoid(log_odds(avg_w) - log_odds(avg_l)), beta, per_token_reward=True)


@objective(
    name="asft",
    shape="pairwise",
    needs_reference=False,
    needs_lengths=True,
    paper="ASFT: Aligned Supervised Fine-Tuning through Absolute Likelihood",
    formula="−π_w/|y_w| + λ·[−log σ(f(y_w)) − log σ(−f(y_l))],  f = log odds of p = exp(π/|y|) (default) or π/|y|",
    summary="ASFT: SFT plus an absolute-likelihood term per response (no Bradley-Terry, no reference)",
    hyperparameters=(
        params.beta(0.1, "λ: weight of the alignment term", "0.05-1", zero_ok=True),
        Hyperparameter(
            "asft_score",
            "log_odds",
            "f: 'log_odds' = log(p/(1−p)) of the mean token likelihood p (ORPO's odds, which ASFT "
            "builds on; then σ(f) = p); 'avg_logp' = π/|y| directly",
            choices=("log_odds", "avg_logp"),
        ),
    ),
    modifiers=modifiers.NO_F_DIVERGENCE,
    notes="With the default log-odds score, σ(f) = p, so the alignment term is −log p_w − log(1 − p_l): "
    "raise the chosen's own likelihood and lower the rejected's, each on an absolute scale.",
    differences=(
        ("ASFT score", "—", "ORPO-style log-odds of the mean token likelihood", "`asft_score=\"log_odds\"`",
         "`\"avg_logp\"`"),
    ),
)
def asft(b: PairwiseBatch, *, beta: float, asft_score: str) -> ObjectiveOutput:
    """ASFT: NLL(y_w) + λ·(−log σ(f(y_w)) − log σ(−f(y_l))).

    DPO's Bradley-Terry loss only sees the likelihood difference and lowers the rejected
    response faster than it raises the chosen one. ASFT scores each response on its own
    (absolute) likelihood, pushing the chosen one towards probability 1 and the
    rejected one towards 0 independently, with no reference model.
    """
    len_w, len_l = b.lengths()
    avg_w, avg_l = per_token(b.policy_chosen_logps, len_w), per_token(b.policy_rejected_logps, len_l)
    f_w, f_l = (log_odds(avg_w), log_odds(avg_l)) if asft_score == "log_odds" else (avg_w, avg_l)
    return b.output(-avg_w + beta * (-F.logsigmoid(f_w) - F.logsigmoid(-f_l)), beta, per_token_reward=True)
