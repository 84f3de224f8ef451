"""DPO variants beyond TRL's current ``loss_type`` list: cDPO, ODPO, β-DPO, DPOP, RPO,
and the named modifier presets WPO and LD-DPO. Each is a few lines on top of the shared
pieces; the DPO function itself lives in :mod:`.pairwise`.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from . import modifiers, params
from .batches import ObjectiveOutput, PairwiseBatch
from .common import nll, smoothed_logistic
from .pairwise import DPO_PAPER, dpo
from .registry import Hyperparameter, Objective, get, objective, register
from .state import RunningStat
from .token_level import LD_INPUTS, LD_REF_INPUTS, WPO_INPUTS


@objective(
    name="cdpo",
    aliases=("conservative_dpo",),
    shape="pairwise",
    needs_reference=True,
    paper="A Note on DPO with Noisy Preferences and Relationship to IPO",
    formula="−(1−ε) log σ(β·Δ) − ε log σ(−β·Δ)",
    summary="Conservative DPO: DPO with label smoothing ε (TRL <= 0.28 'sigmoid' with label_smoothing)",
    hyperparameters=(params.beta(), params.label_smoothing(0.1, typical="0.05-0.2")),
    modifiers=modifiers.ALL,
    notes="TRL >= 0.29 removed label smoothing from 'sigmoid', so cDPO has no TRL name any more; "
    "it was TRL <= 0.28's sigmoid with label_smoothing > 0. ε = 0 is DPO.",
    differences=(
        ("cDPO", "removed from `sigmoid` in 0.29 (was `sigmoid` + `label_smoothing`)", "Mitchell's note",
         "separate `cdpo` (ε = 0.1); `sigmoid` has no smoothing, as TRL", "—"),
    ),
)
def cdpo(
    b: PairwiseBatch, *, beta: float, label_smoothing: float
) -> ObjectiveOutput:
    """Conservative DPO: −(1−ε) log σ(βΔ) − ε log σ(−βΔ).

    Treats each label as correct with probability 1−ε and trains on the soft target. The
    loss no longer rewards margins without bound: its minimum is at a finite margin
    βΔ = log((1−ε)/ε), a guard against overconfident fitting of noisy labels.
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing ε must be in [0, 0.5), got {label_smoothing}")
    return b.output(smoothed_logistic(beta * b.score_margin(), label_smoothing), beta)


_OFFSET_FNS = {"log1p": torch.log1p, "log": torch.log, "identity": lambda m: m}


@objective(
    name="odpo",
    aliases=("dpo_offset",),
    shape="pairwise",
    needs_reference=True,
    paper="Direct Preference Optimization with an Offset",
    formula="−log σ(β·h − Δ_r),  Δ_r = offset_scale · f(margin),  f = log(1 + x) (default), log x (paper) or x",
    summary="ODPO: the margin must exceed an offset that grows with preference strength",
    hyperparameters=(
        params.beta(),
        Hyperparameter("offset_scale", 1.0, "α: scale of the offset Δ_r", "0.1-2", low=0.0),
        Hyperparameter(
            "offset_fn",
            "log1p",
            "f applied to the preference strength: log1p = log(1 + margin) (0 at margin 0); log = "
            "log(margin), the paper's and its authors' code (margin must be > 0); identity = margin",
            choices=tuple(_OFFSET_FNS),
        ),
    ),
    inputs=frozenset({"margin"}),
    modifiers=modifiers.NO_F_DIVERGENCE,
    notes="The paper and its authors' code set Δ_r = α·log(score_w − score_l) (offset_fn='log'); "
    "log(0) would be −∞, so the default here is log(1 + margin), which is 0 at margin 0 (ODPO = DPO "
    "there). margin must be >= 0 with log1p and > 0 with log. In training, a pair's margin is its "
    "margin column, else score_chosen − score_rejected when both scores are given; data with "
    "neither is refused, naming the row.",
    differences=(
        ("ODPO offset", "—", "Δ_r = α·log(score_w − score_l) (paper and authors' code)",
         "α·log(1 + margin): 0 at margin 0, so ODPO = DPO there",
         "`offset_fn=\"log\"`: the paper's α·log(margin); `\"identity\"`: α·margin"),
        ("ODPO margin in training", "—", "score difference", "the `margin` column, else "
         "`score_chosen − score_rejected`; neither: refused naming the row", "—"),
    ),
)
def odpo(b: PairwiseBatch, *, beta: float, offset_scale: float, offset_fn: str) -> ObjectiveOutput:
    """ODPO: −log σ(β·h − α·f(margin)).

    Not all pairs are equally clear: a chosen response that is much better (say, the
    rejected one is toxic) should win by more. The offset makes the required log-ratio
    margin grow with the preference strength given per pair (e.g. a reward difference).
    """
    margin = b.margin.to(b.policy_chosen_logps.dtype)
    bad = ~(margin > 0) if offset_fn == "log" else (~(margin >= 0) if offset_fn == "log1p" else ~torch.isfinite(margin))
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten().tolist()[:10]
        need = {"log": "> 0", "log1p": ">= 0"}.get(offset_fn, "a finite number")
        raise ValueError(
            f"margin must be {need} (how much the chosen response is preferred) with "
            f"offset_fn={offset_fn!r}; not at rows {rows}"
        )
    offset = offset_scale * _OFFSET_FNS[offset_fn](margin)
    rho_w, rho_l = b.logratios()
    return b.output(-F.logsigmoid(beta * (rho_w - rho_l) - offset.detach()), beta)


def beta_dpo_selection(
    gap: Tensor,
    *,
    beta: float,
    alpha: float,
    filter_ratio: float,
    gap_mean: Tensor | float | None = None,
    gap_std: Tensor | float | None = None,
    sampling: str = "topk",
) -> tuple[Tensor, Tensor]:
    """β-DPO's batch β and kept-example mask from the (detached) gaps h_i.

    * M_0 = ``gap_mean`` (the trainer's running mean of h, e.g. ``RunningMoments(momentum=0.9)``),
      σ = ``gap_std``; each defaults to this batch's own statistic.
    * Filtering: p_i = exp(−(h_i − M_0)² / (2σ²)); keep n_keep = max(1, ⌊n(1 − filter_ratio)⌋)
      examples: the n_keep largest p_i (``sampling='topk'``, deterministic) or drawn without
      replacement ∝ p_i (``'multinomial'``, the authors' code; uses torch's global RNG).
    * β_batch = β·(1 + α·(mean_{kept} h − M_0)), clamped at ≥ 1e-3.

    Returns (β_batch as a 0-d tensor, bool keep mask [B]).
    """
    gap = gap.detach()
    n = gap.numel()
    m0 = gap.mean() if gap_mean is None else torch.as_tensor(gap_mean, dtype=gap.dtype, device=gap.device)
    sd = gap.std(unbiased=False) if gap_std is None else torch.as_tensor(gap_std, dtype=gap.dtype, device=gap.device)
    keep = torch.ones(n, dtype=torch.bool, device=gap.device)
    n_keep = max(1, math.floor(n * (1.0 - filter_ratio) + 1e-9))
    if n_keep < n:
        weight = torch.exp(-0.5 * ((gap - m0) / sd.clamp_min(1e-8)) ** 2)
        if sampling == "multinomial":
            idx = torch.multinomial(weight.clamp_min(1e-12), n_keep, replacement=False)
        else:
            idx = torch.topk(weight, n_keep, sorted=False).indices
        keep = torch.zeros_like(keep)
        keep[idx] = True
    beta_batch = (beta * (1.0 + alpha * (gap[keep].mean() - m0))).clamp_min(1e-3)
    return beta_batch, keep


def _gaps(b: PairwiseBatch, hps: dict) -> Tensor:
    rho_w, rho_l = b.logratios()
    return (rho_w - rho_l).detach()


# The authors' code: EMAs from 0 of each batch's mean and (unbiased) std; "first_batch" starts
# them at the first batch's mean and population std (prefalign's form before 2026-12).
BETA_DPO_GAP = RunningStat(
    "gap",
    "EMAs (momentum 0.9) of the batch mean and std of the gap h = ρ_w − ρ_l: M_0 and σ, from 0 "
    "with the unbiased std (the authors' code)",
    values=_gaps,
    fills=lambda m: {"gap_mean": m.mean, "gap_std": m.std},
    momentum=0.9,
    active=lambda hps: hps["beta_dpo_statistics"] == "authors",
    ema_from_zero=True,
    unbiased=True,
)
BETA_DPO_GAP_FIRST_BATCH = RunningStat(
    "gap",
    "EMAs (momentum 0.9) of the batch mean and population std of h, started at the first batch",
    values=_gaps,
    fills=lambda m: {"gap_mean": m.mean, "gap_std": m.std},
    momentum=0.9,
    active=lambda hps: hps["beta_dpo_statistics"] == "first_batch",
)


@objective(
    name="beta_dpo",
    aliases=("dynamic_beta_dpo",),
    shape="pairwise",
    needs_reference=True,
    paper="β-DPO: Direct Preference Optimization with Dynamic β",
    formula="h_i = ρ_w − ρ_l;  β_b = β·(1 + α·(mean_kept h − M_0));  loss_i = (n/n_kept)·[kept_i]·(−log σ(β_b·h_i))",
    summary="β-DPO: β calibrated per batch from the reward gap, with β-guided outlier filtering",
    hyperparameters=(
        params.beta(description="base β_0"),
        Hyperparameter("beta_dpo_alpha", 0.6, "α: how strongly β follows the batch's mean gap (0 = fixed β)", "0-1", low=0.0),
        Hyperparameter(
            "beta_dpo_filter_ratio", 0.2, "fraction of the batch filtered out as outliers (0 = no filtering)", "0-0.3",
            low=0.0, high=1.0, high_open=True,
        ),
        Hyperparameter(
            "beta_dpo_sampling",
            "topk",
            "how kept examples are chosen: 'topk' keeps the most typical gaps (deterministic); "
            "'multinomial' samples ∝ the Gaussian weight as the authors' code",
            choices=("topk", "multinomial"),
        ),
        Hyperparameter(
            "beta_dpo_statistics",
            "authors",
            "how the trainer keeps M_0 and σ: 'authors' (their code: EMAs from 0, unbiased std) or "
            "'first_batch' (EMAs started at the first batch, population std)",
            choices=("authors", "first_batch"),
        ),
    ),
    optional_inputs=frozenset({"gap_mean", "gap_std"}),
    modifiers=modifiers.LD_ONLY,
    state=(BETA_DPO_GAP, BETA_DPO_GAP_FIRST_BATCH),
    notes="The running threshold M_0 and spread σ are the batch fields gap_mean / gap_std. The "
    "trainer keeps them as the authors' code does: EMAs (momentum 0.9) from 0 of each batch's mean "
    "and unbiased std of h (beta_dpo_statistics='first_batch': started at the first batch, "
    "population std), updated with the batch before its loss, reduced over processes and saved "
    "with checkpoints. "
    "In compute() pass them (e.g. from RunningMoments(momentum=0.9)); without them this batch's "
    "own mean and std are used, which makes M_0 the batch's own mean gap. Filtered examples get "
    "loss 0 and kept ones are scaled by n/n_kept, so losses.mean() is the mean over kept "
    "examples as in the paper. β_b is detached.",
    differences=(
        ("β-DPO filtering", "—", "sample ∝ Gaussian weight around the running mean (authors' code: multinomial)",
         "keep the ⌊n(1−ratio)⌋ most typical gaps (deterministic `topk`)", "`beta_dpo_sampling=\"multinomial\"`"),
        ("β-DPO running statistics", "—", "EMA (momentum 0.9) from 0 of batch mean/unbiased std of h, updated before the loss",
         "the same, kept by the trainer (reduced over processes, saved with checkpoints); in `compute()` "
         "the inputs `gap_mean`/`gap_std`, else the batch's own",
         "`beta_dpo_statistics=\"first_batch\"`: EMAs started at the first batch, population std"),
        ("β-DPO filtered examples", "—", "excluded from the mean",
         "loss 0, kept ones scaled by n/n_kept so `losses.mean()` is the paper's mean", "—"),
    ),
)
def beta_dpo(
    b: PairwiseBatch, *, beta: float, beta_dpo_alpha: float, beta_dpo_filter_ratio: float, beta_dpo_sampling: str,
    beta_dpo_statistics: str = "authors",  # read by the trainer's running statistics, not here
) -> ObjectiveOutput:
    """β-DPO: DPO with a batch-level β from the gap statistics, after filtering outliers.

    The best β depends on how informative the pairs are: for pairs with a large reward
    gap, a larger β (stay close to the reference) works better; for near-ties, a smaller
    one. β-DPO scales β by the batch's mean gap relative to a running threshold, and
    first drops the pairs whose gap is far from the threshold (likely noisy or trivial).
    """
    if not 0.0 <= beta_dpo_filter_ratio < 1.0:
        raise ValueError(f"beta_dpo_filter_ratio must be in [0, 1), got {beta_dpo_filter_ratio}")
    rho_w, rho_l = b.logratios()
    h = rho_w - rho_l
    beta_b, keep = beta_dpo_selection(
        h,
        beta=beta,
        alpha=beta_dpo_alpha,
        filter_ratio=beta_dpo_filter_ratio,
        gap_mean=b.gap_mean,
        gap_std=b.gap_std,
        sampling=beta_dpo_sampling,
    )
    losses = -F.logsigmoid(beta_b.detach() * h)
    scale = h.numel() / int(keep.sum())
    return b.output(torch.where(keep, losses * scale, torch.zeros_like(losses)), beta)


@objective(
    name="dpop",
    aliases=("dpo_positive", "smaug"),
    shape="pairwise",
    needs_reference=True,
    paper="Smaug: Fixing Failure Modes of Preference Optimisation with DPO-Positive",
    formula="−log σ(β·(h − λ·max(0, ref_w − π_w))),  h = ρ_w − ρ_l",
    summary="DPO-Positive: DPO plus a penalty whenever the chosen likelihood falls below the reference's",
    hyperparameters=(
        params.beta(),
        Hyperparameter("dpop_lambda", 50.0, "λ: weight of the penalty on lowering the chosen likelihood", "5-500 (paper: 5 or 50)", low=0.0),
    ),
    modifiers=modifiers.NO_F_DIVERGENCE,
)
def dpop(b: PairwiseBatch, *, beta: float, dpop_lambda: float) -> ObjectiveOutput:
    """DPO-Positive: −log σ(β(h − λ·max(0, log π_ref(y_w) − log π(y_w)))).

    DPO can widen the margin by lowering both likelihoods, and the chosen response's
    probability often falls (especially for pairs that differ in a few tokens). DPOP
    subtracts a penalty from the logit whenever the chosen log-prob drops below the
    reference's, so the margin can no longer be bought by lowering the chosen response.
    """
    rho_w, rho_l = b.logratios()
    penalty = torch.relu(b.ref_chosen_logps - b.policy_chosen_logps)
    return b.output(-F.logsigmoid(beta * (rho_w - rho_l - dpop_lambda * penalty)), beta)


@objective(
    name="rpo",
    aliases=("dpo_nll", "regularized_po"),
    shape="pairwise",
    needs_reference=True,
    needs_lengths=True,
    paper="Provably Mitigating Overoptimization in RLHF: Your SFT Loss is Implicitly an Adversarial Regularizer",
    formula="−log σ(β·Δ) + α·(−π_w/|y_w|)",
    summary="RPO: DPO plus a token-mean NLL on the chosen response",
    hyperparameters=(
        params.beta(),
        Hyperparameter("rpo_alpha", 1.0, "α: weight of the NLL term on the chosen response", "0.1-1 (TRL docs: 1.0)", low=0.0),
    ),
    modifiers=modifiers.ALL,
    notes="The NLL is the per-example token mean −π_w/|y_w|. TRL <= 0.28's rpo_alpha used the "
    "batch token mean (equal when all chosen lengths are equal); TRL >= 0.29 expresses this as "
    "loss_type=['sigmoid', 'sft'].",
    differences=(
        ("NLL in RPO/CPO/ORPO/ASFT", "batch token mean", "per-sequence token mean",
         "per-example −π_w/\\|y_w\\| (a per-example loss must be per example)",
         "`sft` with `nll_reduction=\"batch\"` reproduces TRL's `sft` term"),
    ),
)
def rpo(b: PairwiseBatch, *, beta: float, rpo_alpha: float) -> ObjectiveOutput:
    """RPO: −log σ(βΔ) + α·NLL(y_w).

    Derived from a max-min problem against an adversarially chosen reward: the SFT loss
    on the preferred responses acts as a regularizer that keeps the policy on the data,
    mitigating reward over-optimization and the fall of the chosen likelihood.
    """
    len_w, _ = b.lengths()
    out = dpo(b, beta=beta)
    return dataclasses.replace(out, losses=out.losses + rpo_alpha * nll(b.policy_chosen_logps, len_w))


def _preset(base: Objective, **changes) -> Objective:
    """A named entry reusing ``base``'s function with different defaults/metadata."""
    defaults = changes.pop("defaults")
    hps = tuple(
        dataclasses.replace(h, default=defaults[h.name]) if h.name in defaults else h
        for h in base.hyperparameters
    )
    fields = {k: getattr(base, k) for k in base.__dataclass_fields__}
    fields.update(hyperparameters=hps, aliases=(), trl_name=None, notes="", optional_inputs=frozenset())
    fields.update(changes)
    return Objective(**fields)


def _register_presets() -> None:
    sigmoid = get("sigmoid")  # registered by .pairwise, imported above
    register(
        _preset(
            sigmoid,
            name="wpo",
            paper="WPO: Enhancing RLHF with Weighted Preference Optimization",
            formula="w_w·w_l·(−log σ(β·Δ)),  w = min(1, ·) of exp(mean_t[log p(y_t) − log Σ_v p(v)²]) (no grad)",
            summary="WPO: DPO with each pair weighted by how likely the policy is to generate it now",
            defaults={"use_weighting": True},
            inputs=WPO_INPUTS,
            notes="The same as any pairwise objective with use_weighting=True (TRL's flag). The pair "
            "weight exp(mean_w + mean_l) is clamped at 1 as in TRL's implementation.",
        )
    )
    register(
        _preset(
            sigmoid,
            name="ld_dpo",
            aliases=("ldpo",),
            paper="Length Desensitization in Directed Preference Optimization",
            formula="π̂ = Σ_{t ≤ min(|y_w|,|y_l|)} log p_t + α·Σ_{t > min} log p_t  for policy and reference; then DPO",
            summary="LD-DPO: DPO on log-probs that down-weight the tokens past the shorter response",
            defaults={"ld_alpha": 0.5},
            inputs=LD_INPUTS | LD_REF_INPUTS,
            notes="The same as any pairwise objective with ld_alpha set (TRL's flag). The summed "
            "log-prob arguments are replaced by sums rebuilt from the per-token inputs.",
        )
    )


_register_presets()

__all__ = ["beta_dpo_selection", "DPO_PAPER"]
