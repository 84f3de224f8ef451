"""Pairwise objectives with a reference model, under TRL's ``loss_type`` names and semantics.

Each function takes a :class:`PairwiseBatch` and its own hyperparameters and returns an
:class:`ObjectiveOutput`: the per-pair losses, Tensor[B], unreduced, with the implicit rewards
β·ρ. s_w, s_l are the f-divergence scores of the log-ratios (``s = ρ`` by default; the
f-divergence modifier sets the batch's divergence) and Δ = s_w − s_l, exactly as TRL's step 1.
The modifiers (f-divergence, LD-DPO, WPO) are declared per objective and applied by the
dispatcher.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from . import modifiers, params
from .batches import ObjectiveOutput, PairwiseBatch
from .common import per_token, smoothed_logistic, sorted_batch
from .registry import Hyperparameter, objective
from .state import RunningStat

DPO_PAPER = "Direct Preference Optimization: Your Language Model is Secretly a Reward Model"


@objective(
    name="sigmoid",
    aliases=("dpo", "f_dpo"),
    trl_name="sigmoid",
    shape="pairwise",
    needs_reference=True,
    paper=DPO_PAPER,
    formula="-log σ(β·Δ),  Δ = s_w − s_l,  s = f′-score of ρ = log π − log π_ref (s = ρ for reverse KL)",
    summary="DPO: logistic (Bradley-Terry) loss on the implicit-reward margin; f-DPO via f_divergence_type",
    hyperparameters=(params.beta(),),
    modifiers=modifiers.ALL,
    notes="f-DPO ('Beyond Reverse KL: Generalizing Direct Preference Optimization with Diverse "
    "Divergence Constraints') is this objective with f_divergence_type != 'reverse_kl'.",
)
def dpo(b: PairwiseBatch, *, beta: float) -> ObjectiveOutput:
    """DPO: −log σ(β·Δ) with Δ = s_w − s_l (s = ρ under reverse KL).

    The policy is its own reward model: r = β log π/π_ref. Maximizing the Bradley-Terry
    likelihood that the chosen response out-scores the rejected one trains the policy to
    solve the KL-regularized reward maximization exactly, with no reward model and no
    sampling. β sets how far from the reference the policy may move.
    """
    return b.output(-F.logsigmoid(beta * b.score_margin()), beta)


@objective(
    name="hinge",
    aliases=("slic",),
    trl_name="hinge",
    shape="pairwise",
    needs_reference=True,
    paper="SLiC-HF: Sequence Likelihood Calibration with Human Feedback",
    formula="max(0, 1 − β·Δ)",
    summary="SLiC / RSO hinge loss on the implicit-reward margin",
    hyperparameters=(params.beta(description="inverse margin: the hinge is satisfied once Δ ≥ 1/β"),),
    modifiers=modifiers.ALL,
)
def hinge(b: PairwiseBatch, *, beta: float) -> ObjectiveOutput:
    """Hinge (SLiC calibration): max(0, 1 − β·Δ).

    Instead of pushing the margin up forever like the logistic loss, the hinge stops once
    the chosen response beats the rejected one by 1/β nats of log-ratio: pairs already
    ranked with enough margin contribute nothing.
    """
    return b.output(torch.relu(1.0 - beta * b.score_margin()), beta)


@objective(
    name="ipo",
    trl_name="ipo",
    shape="pairwise",
    needs_reference=True,
    paper="A General Theoretical Paradigm to Understand Learning from Human Preferences",
    formula="(s_w/|y_w| − s_l/|y_l| − 1/(2β))²   (ipo_normalize=False: (s_w − s_l − 1/(2β))²)",
    summary="IPO: squared regression of the log-ratio margin onto 1/(2β)",
    hyperparameters=(
        params.beta(description="the paper's τ: the target margin is 1/(2β)"),
        Hyperparameter(
            "ipo_normalize",
            True,
            "divide each score by its response length before the margin (TRL); False = the paper's unnormalized form",
        ),
    ),
    needs_lengths=True,
    modifiers=modifiers.ALL,
    notes="TRL divides the scores by the response lengths (default here, ipo_normalize=True); "
    "the IPO paper does not (ipo_normalize=False). Lengths are required only when normalizing.",
    differences=(
        ("IPO length normalization", "divides s by \\|y\\| (≥ 0.29: only in the `ipo` branch)",
         "no normalization", "`ipo_normalize=True` (TRL)", "`ipo_normalize=False`"),
    ),
)
def ipo(b: PairwiseBatch, *, beta: float, ipo_normalize: bool) -> ObjectiveOutput:
    """IPO: (s_w/|y_w| − s_l/|y_l| − 1/(2β))² (TRL), or unnormalized (paper).

    DPO's logistic loss keeps rewarding larger margins even when preferences are
    deterministic, so it can drift arbitrarily far from the reference. IPO regresses the
    margin to a finite target 1/(2β), which keeps the KL regularization effective.
    """
    s_w, s_l = b.scores()
    if ipo_normalize:
        len_w, len_l = b.lengths()
        s_w, s_l = per_token(s_w, len_w), per_token(s_l, len_l)
    return b.output((s_w - s_l - 1.0 / (2.0 * beta)) ** 2, beta)


@objective(
    name="robust",
    aliases=("robust_dpo", "rdpo"),
    trl_name="robust",
    shape="pairwise",
    needs_reference=True,
    paper="Provably Robust DPO: Aligning Language Models with Noisy Feedback",
    formula="[−(1−ε) log σ(β·Δ) + ε log σ(−β·Δ)] / (1 − 2ε),  ε = label_smoothing < 1/2",
    summary="rDPO: unbiased DPO loss under random label flips with rate ε",
    hyperparameters=(params.beta(), params.label_smoothing(0.0, typical="0-0.4 (must be < 0.5)")),
    modifiers=modifiers.ALL,
)
def robust(
    b: PairwiseBatch, *, beta: float, label_smoothing: float
) -> ObjectiveOutput:
    """Robust DPO: [−(1−ε) log σ(βΔ) + ε log σ(−βΔ)] / (1 − 2ε).

    If each label is flipped with probability ε, this loss equals, in expectation over the
    flips, the DPO loss on the clean labels: the noise is removed on average rather than
    smoothed over (compare cDPO). ε = 0 is DPO.
    """
    eps = label_smoothing
    if not 0.0 <= eps < 0.5:
        raise ValueError(f"label_smoothing (flip rate ε) must be in [0, 0.5), got {eps}")
    z = beta * b.score_margin()
    return b.output((-(1.0 - eps) * F.logsigmoid(z) + eps * F.logsigmoid(-z)) / (1.0 - 2.0 * eps), beta)


@objective(
    name="exo_pair",
    aliases=("exo",),
    trl_name="exo_pair",
    shape="pairwise",
    needs_reference=True,
    paper="Towards Efficient Exact Optimization of Language Model Alignment",
    formula="σ(βΔ)·(log σ(βΔ) − log(1−ε)) + σ(−βΔ)·(log σ(−βΔ) − log ε)",
    summary="EXO: reverse KL between the model's pair preference and the (smoothed) label",
    hyperparameters=(
        params.beta(),
        params.label_smoothing(1e-3, "smoothing ε of the target distribution; must be > 0", "1e-3 (paper)",
                               low_open=True, high=1.0),
    ),
    modifiers=modifiers.ALL,
    notes="TRL's default label_smoothing is 0, which TRL rejects for exo_pair; here the default is "
    "the paper's 1e-3. ε = 0 raises an error.",
    differences=(
        ("EXO ε", "default 0 → error", "1e-3", "`label_smoothing=1e-3`", "any ε in (0, 1)"),
    ),
)
def exo_pair(
    b: PairwiseBatch, *, beta: float, label_smoothing: float
) -> ObjectiveOutput:
    """EXO (pair form): KL(q_θ ‖ p_ε) between the model's preference q and the label p.

    DPO minimizes the forward KL to the preference distribution, which is mean-seeking;
    EXO minimizes the reverse KL, which is mode-seeking and recovers the RLHF optimum
    exactly. The target puts 1−ε on the chosen response and ε on the rejected.
    """
    eps = label_smoothing
    if not 0.0 < eps < 1.0:
        raise ValueError(f"label_smoothing ε must be in (0, 1) for EXO (the paper suggests 1e-3), got {eps}")
    z = beta * b.score_margin()
    log_qw, log_ql = F.logsigmoid(z), F.logsigmoid(-z)
    return b.output(torch.sigmoid(z) * (log_qw - math.log1p(-eps)) + torch.sigmoid(-z) * (log_ql - math.log(eps)), beta)


@objective(
    name="nca_pair",
    aliases=("nca",),
    trl_name="nca_pair",
    shape="pairwise",
    needs_reference=True,
    paper="Noise Contrastive Alignment of Language Models with Explicit Rewards",
    formula="−log σ(β s_w) − ½ log σ(−β s_w) − ½ log σ(−β s_l)",
    summary="NCA: noise-contrastive loss on absolute rewards; keeps the chosen likelihood from falling",
    hyperparameters=(params.beta(),),
    modifiers=modifiers.ALL,
)
def nca_pair(b: PairwiseBatch, *, beta: float) -> ObjectiveOutput:
    """NCA (pair form): −log σ(βs_w) − ½ log σ(−βs_w) − ½ log σ(−βs_l).

    DPO only sees the reward difference, so both likelihoods may fall together. NCA
    scores each response's absolute reward against noise, which optimizes the chosen
    response's likelihood directly and prevents it from decreasing.
    """
    s_w, s_l = b.scores()
    rw, rl = beta * s_w, beta * s_l
    return b.output(-F.logsigmoid(rw) - 0.5 * F.logsigmoid(-rw) - 0.5 * F.logsigmoid(-rl), beta)


def _pair_rewards(b: PairwiseBatch, hps: dict) -> Tensor:
    """β·s_w and β·s_l of every pair, detached: what BCO's running mean δ averages."""
    s_w, s_l = b.scores()
    return hps["beta"] * torch.cat([s_w, s_l]).detach()


BCO_PAIR_DELTA = RunningStat(
    "reward",
    "running mean of the rewards β·s of chosen and rejected responses (exact, over all steps)",
    values=_pair_rewards,
    fills=lambda m: {"delta": m.mean},
    active=lambda hps: hps["reward_shift"] == "running_mean",
)


@objective(
    name="bco_pair",
    trl_name="bco_pair",
    shape="pairwise",
    needs_reference=True,
    paper="Binary Classifier Optimization for Large Language Model Alignment",
    formula="−log σ(β s_w − δ) − log σ(−(β s_l − δ)),  δ = 0 (reward_shift='none') or the running mean of β·s",
    summary="BCO on pairs: a binary classifier whose logit is the implicit reward",
    hyperparameters=(
        params.beta(),
        Hyperparameter(
            "reward_shift",
            "none",
            "δ: 'none' = 0 (TRL >= 0.29); 'running_mean' = the running mean of the rewards β·s over "
            "training (the paper, TRL <= 0.28), kept by the trainer; without one (the functional "
            "API, no delta=) this batch's mean",
            choices=("none", "running_mean"),
        ),
    ),
    optional_inputs=frozenset({"delta"}),
    modifiers=modifiers.ALL,
    state=(BCO_PAIR_DELTA,),
    notes="TRL >= 0.29 has no reward shift (δ = 0, the default here). The paper (and TRL <= 0.28) "
    "subtracts δ, the running mean of the rewards: reward_shift='running_mean' (the trainer keeps "
    "it across steps and checkpoints). A delta= passed to compute() is used as given.",
    differences=(
        ("BCO-pair reward shift δ", ">= 0.29: none; <= 0.28: running mean", "running mean of rewards",
         "`reward_shift=\"none\"` (δ = 0, TRL)",
         "`reward_shift=\"running_mean\"`: the trainer's running mean, saved with checkpoints; or `delta=`"),
    ),
)
def bco_pair(b: PairwiseBatch, *, beta: float, reward_shift: str) -> ObjectiveOutput:
    """BCO (pair form): −log σ(βs_w − δ) − log σ(−(βs_l − δ)).

    Chosen responses are positives and rejected ones negatives of a binary classifier
    whose logit is the implicit reward; minimizing this cross-entropy bounds the DPO loss
    from above. δ shifts the decision boundary to the running mean reward (paper).
    """
    s_w, s_l = b.scores()
    if b.delta is not None:
        delta = b.delta.to(s_w.dtype).detach()
    elif reward_shift == "running_mean":
        delta = (beta * torch.cat([s_w, s_l])).detach().mean()
    else:
        delta = 0.0
    return b.output(-F.logsigmoid(beta * s_w - delta) - F.logsigmoid(-(beta * s_l - delta)), beta)


@objective(
    name="sppo_hard",
    aliases=("sppo",),
    trl_name="sppo_hard",
    shape="pairwise",
    needs_reference=True,
    paper="Self-Play Preference Optimization for Language Model Alignment",
    formula="(s_w − 1/(2β))² + (s_l + 1/(2β))²",
    summary="SPPO with hard (0/1) win probabilities: regress each log-ratio to ±1/(2β)",
    hyperparameters=(params.beta(),),
    modifiers=modifiers.ALL,
)
def sppo_hard(b: PairwiseBatch, *, beta: float) -> ObjectiveOutput:
    """SPPO (hard labels): (s_w − 1/(2β))² + (s_l + 1/(2β))².

    SPPO approximates the Nash equilibrium of a two-player preference game by regressing
    each response's log-ratio onto its (centered) win probability; with hard labels the
    winner's target is +1/(2β) and the loser's −1/(2β).
    """
    s_w, s_l = b.scores()
    half = 0.5 / beta
    return b.output((s_w - half) ** 2 + (s_l + half) ** 2, beta)


_AOT_NOTE = (
    "Losses are per position of the batch-sorted vectors, not per input pair (their mean is "
    "the AOT loss). Uses raw log-probs and ignores f_divergence_type, as TRL. Not combinable "
    "with use_weighting."
)


@objective(
    name="aot",
    trl_name="aot",
    shape="pairwise",
    needs_reference=True,
    paper="Distributional Preference Alignment of LLMs via Optimal Transport",
    formula="δ = sort_batch(π_w − π_l) − sort_batch(ref_w − ref_l);  −(1−ε) log σ(βδ) − ε log σ(−βδ)",
    summary="AOT (paired): first-order stochastic dominance of chosen over rejected log-ratio margins",
    hyperparameters=(params.beta(), params.label_smoothing()),
    modifiers=modifiers.LD_ONLY,
    notes=_AOT_NOTE,
)
def aot(b: PairwiseBatch, *, beta: float, label_smoothing: float) -> ObjectiveOutput:
    """AOT (paired): smoothed logistic loss on sorted policy vs. sorted reference margins.

    AOT asks for distributional, not pointwise, dominance: the distribution of the
    policy's chosen-minus-rejected margins should dominate the reference's. In one
    dimension the optimal transport plan is the sorted matching, so both margin vectors
    are sorted over the batch and compared position by position.
    """
    margin = sorted_batch(b.policy_chosen_logps - b.policy_rejected_logps)
    ref_margin = sorted_batch(b.ref_chosen_logps - b.ref_rejected_logps)
    return b.output(smoothed_logistic(beta * (margin - ref_margin), label_smoothing), beta)


@objective(
    name="aot_unpaired",
    trl_name="aot_unpaired",
    shape="pairwise",
    needs_reference=True,
    paper="Distributional Preference Alignment of LLMs via Optimal Transport",
    formula="δ = sort_batch(ρ_w) − sort_batch(ρ_l);  −(1−ε) log σ(βδ) − ε log σ(−βδ)",
    summary="AOT (unpaired): chosen log-ratios should stochastically dominate rejected ones",
    hyperparameters=(params.beta(), params.label_smoothing()),
    modifiers=modifiers.LD_ONLY,
    notes=_AOT_NOTE,
)
def aot_unpaired(b: PairwiseBatch, *, beta: float, label_smoothing: float) -> ObjectiveOutput:
    """AOT (unpaired): smoothed logistic loss on sorted ρ_w vs. sorted ρ_l.

    The distribution of rewards of chosen responses should dominate that of rejected
    responses; pairing is not needed, so chosen and rejected log-ratios are each sorted
    over the batch and matched quantile to quantile.
    """
    rho_w, rho_l = b.logratios()
    return b.output(smoothed_logistic(beta * (sorted_batch(rho_w) - sorted_batch(rho_l)), label_smoothing), beta)


APO_PAPER = (
    "Anchored Preference Optimization and Contrastive Revisions: Addressing Underspecification in Alignment"
)


@objective(
    name="apo_zero",
    trl_name="apo_zero",
    shape="pairwise",
    needs_reference=True,
    paper=APO_PAPER,
    formula="(1 − σ(β ρ_w)) + σ(β ρ_l)",
    summary="APO-zero: push chosen likelihood up and rejected down (chosen better than the model)",
    hyperparameters=(params.beta(),),
    modifiers=modifiers.NO_F_DIVERGENCE,
    notes="Uses raw log-ratios ρ (not f-divergence scores), as TRL.",
)
def apo_zero(b: PairwiseBatch, *, beta: float) -> ObjectiveOutput:
    """APO-zero: (1 − σ(βρ_w)) + σ(βρ_l).

    Anchored objectives say which way each likelihood should move, not just the margin.
    Use when chosen outputs are better than the model's own: raise the chosen likelihood
    and lower the rejected one, each anchored at the reference.
    """
    rho_w, rho_l = b.logratios()
    return b.output((1.0 - torch.sigmoid(beta * rho_w)) + torch.sigmoid(beta * rho_l), beta)


@objective(
    name="apo_down",
    trl_name="apo_down",
    shape="pairwise",
    needs_reference=True,
    paper=APO_PAPER,
    formula="σ(β ρ_w) + (1 − σ(β Δ))",
    summary="APO-down: lower both likelihoods, the rejected more (model better than chosen)",
    hyperparameters=(params.beta(),),
    modifiers=modifiers.ALL,
    notes="The first term uses the raw log-ratio ρ_w and the second the f-divergence margin Δ, as TRL.",
)
def apo_down(b: PairwiseBatch, *, beta: float) -> ObjectiveOutput:
    """APO-down: σ(βρ_w) + (1 − σ(βΔ)).

    Use when the model already beats the chosen outputs: lower the chosen likelihood
    while still widening the chosen-over-rejected margin, so the rejected falls faster.
    """
    rho_w, _ = b.logratios()
    return b.output(torch.sigmoid(beta * rho_w) + (1.0 - torch.sigmoid(beta * b.score_margin())), beta)


@objective(
    name="discopop",
    trl_name="discopop",
    shape="pairwise",
    needs_reference=True,
    paper="Discovering Preference Optimization Algorithms with and for Large Language Models",
    formula="z = βΔ, m = σ(z/τ);  (1 − m)·(−log σ(z)) + m·exp(−z)",
    summary="DiscoPOP: log-ratio-modulated blend of logistic and exponential losses (LLM-discovered)",
    hyperparameters=(
        params.beta(),
        Hyperparameter("discopop_tau", 0.05, "temperature τ of the modulation σ(βΔ/τ)", "0.01-0.1", low=0.0,
                       low_open=True),
    ),
    modifiers=modifiers.ALL,
)
def discopop(
    b: PairwiseBatch, *, beta: float, discopop_tau: float
) -> ObjectiveOutput:
    """DiscoPOP (log-ratio modulated loss): (1 − σ(z/τ))·(−log σ(z)) + σ(z/τ)·exp(−z).

    Found by an LLM-driven search over loss functions: a sigmoid gate on the margin
    blends the logistic (DPO) loss, used for poorly ranked pairs, with an exponential
    loss, used once the pair is ranked correctly.
    """
    z = beta * b.score_margin()
    m = torch.sigmoid(z / discopop_tau)
    return b.output((1.0 - m) * (-F.logsigmoid(z)) + m * torch.exp(-z), beta)


@objective(
    name="sigmoid_norm",
    aliases=("ln_dpo", "dpo_norm"),
    trl_name="sigmoid_norm",
    shape="pairwise",
    needs_reference=True,
    needs_lengths=True,
    paper="The Hitchhiker's Guide to Human Alignment with *PO",
    formula="−log σ(β·(s_w/|y_w| − s_l/|y_l|))",
    summary="LN-DPO: DPO on length-normalized log-ratios",
    hyperparameters=(params.beta(),),
    modifiers=modifiers.ALL,
)
def sigmoid_norm(b: PairwiseBatch, *, beta: float) -> ObjectiveOutput:
    """Length-normalized DPO: −log σ(β(s_w/|y_w| − s_l/|y_l|)).

    Summed log-ratios grow with length, so DPO can raise the margin just by favoring
    longer responses. Dividing each log-ratio by its length compares per-token rewards
    and gives more concise outputs at similar quality.
    """
    s_w, s_l = b.scores()
    len_w, len_l = b.lengths()
    return b.output(-F.logsigmoid(beta * (per_token(s_w, len_w) - per_token(s_l, len_l))), beta)
