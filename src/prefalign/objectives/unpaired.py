"""Unpaired objectives: each example is one completion with a desirable/undesirable label
(KTO, BCO, APO-zero unpaired), negatives only (NPO), or positives only (SFT).

ρ = log π(y|x) − log π_ref(y|x) per example; labels True = desirable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import params
from .batches import ObjectiveOutput, UnpairedBatch
from .common import nll
from .registry import Hyperparameter, objective
from .state import RunningStat

WEIGHTS = (
    Hyperparameter("desirable_weight", 1.0, "weight of the desirable examples' losses", "1; raise when desirable are rarer", low=0.0),
    Hyperparameter("undesirable_weight", 1.0, "weight of the undesirable examples' losses", "1; ratio λ_D·n_D/(λ_U·n_U) in [1, 4/3] (KTO paper)", low=0.0),
)


def _weighted(labels: Tensor, good: Tensor, bad: Tensor, desirable_weight: float, undesirable_weight: float) -> Tensor:
    return torch.where(labels, desirable_weight * good, undesirable_weight * bad)


def kto_reference_point(kl: Tensor | float | None = None, kl_logps: Tensor | None = None,
                        ref_kl_logps: Tensor | None = None) -> Tensor:
    """KTO's z: clamp(mean(kl_logps − ref_kl_logps), min=0) or clamp(kl, min=0), detached."""
    if kl is not None and (kl_logps is not None or ref_kl_logps is not None):
        raise ValueError("pass either kl, or kl_logps with ref_kl_logps, not both")
    if kl is not None:
        return torch.as_tensor(kl).detach().clamp(min=0)
    if kl_logps is None or ref_kl_logps is None:
        raise ValueError(
            "needs its KL reference point: pass kl_logps and ref_kl_logps (policy and reference "
            "log-probs of mismatched prompt/completion pairs, Tensor[n]) or kl (a scalar tensor, "
            "e.g. already averaged across processes); use apo_zero_unpaired for no reference point"
        )
    return (kl_logps - ref_kl_logps).detach().mean().clamp(min=0)


@objective(
    name="kto",
    shape="unpaired",
    needs_reference=True,
    trl_name="kto",
    paper="KTO: Model Alignment as Prospect Theoretic Optimization",
    formula="desirable: λ_D·(1 − σ(β(ρ − z)));  undesirable: λ_U·(1 − σ(β(z − ρ))),  z = max(0, KL estimate) (no grad)",
    summary="KTO: prospect-theoretic value of each completion relative to a KL reference point",
    hyperparameters=(params.beta(), *WEIGHTS),
    optional_inputs=frozenset({"kl_logps", "ref_kl_logps", "kl"}),
    notes="The reference point z is either estimated from kl_logps/ref_kl_logps (log-probs of "
    "mismatched pairs: each prompt with a completion of another prompt) as "
    "max(0, mean(kl_logps − ref_kl_logps)), or given as kl. Either way it is detached. In "
    "training, every example carries a completion of a different prompt as its mismatched pair "
    "(a fixed derangement over the data set, so the reference cache covers it; several "
    "completions of one prompt, or a pair split into a chosen and a rejected row, never borrow "
    "each other's). In distributed training, gather before averaging (or pass kl), as TRL does.",
    differences=(
        ("KTO reference point z", "mean of mismatched-pair log-ratios (completions shifted by one "
         "in the batch), gathered, clamped ≥ 0, no grad", "same",
         "same; the mismatched completion of each example is a completion of another prompt, fixed "
         "over the data set (never the other half of its own pair)",
         "`kl=` a precomputed scalar (still clamped and detached)"),
    ),
)
def kto(b: UnpairedBatch, *, beta: float, desirable_weight: float, undesirable_weight: float) -> ObjectiveOutput:
    """KTO: 1 − σ(β(ρ − z)) for desirable, 1 − σ(β(z − ρ)) for undesirable, weighted.

    Kahneman-Tversky's prospect theory values outcomes relative to a reference point,
    with a saturating value function. KTO applies this to the implicit reward ρ with the
    policy's KL from the reference as the reference point, so it learns from thumbs-up /
    thumbs-down labels alone, no pairs needed.
    """
    z = kto_reference_point(b.kl, b.kl_logps, b.ref_kl_logps).to(b.policy_logps.dtype)
    rho = b.logratios()
    good = 1.0 - torch.sigmoid(beta * (rho - z))
    bad = 1.0 - torch.sigmoid(beta * (z - rho))
    return b.output(_weighted(b.labels, good, bad, desirable_weight, undesirable_weight), beta)


@objective(
    name="apo_zero_unpaired",
    shape="unpaired",
    needs_reference=True,
    trl_name="apo_zero_unpaired",
    paper="Anchored Preference Optimization and Contrastive Revisions: Addressing Underspecification in Alignment",
    formula="desirable: λ_D·(1 − σ(βρ));  undesirable: λ_U·σ(βρ)",
    summary="APO-zero on unpaired data: raise desirable, lower undesirable likelihoods (KTO without z)",
    hyperparameters=(params.beta(), *WEIGHTS),
)
def apo_zero_unpaired(b: UnpairedBatch, *, beta: float, desirable_weight: float, undesirable_weight: float) -> ObjectiveOutput:
    """APO-zero (unpaired): 1 − σ(βρ) for desirable, σ(βρ) for undesirable.

    The anchored objective without pairs: each completion's likelihood is moved up or
    down relative to the reference according to its label, with no KL reference point.
    """
    s = torch.sigmoid(beta * b.logratios())
    return b.output(_weighted(b.labels, 1.0 - s, s, desirable_weight, undesirable_weight), beta)


BCO_DELTA = RunningStat(
    "reward",
    "running mean of the rewards β·ρ of all completions (exact, over all steps)",
    values=lambda b, hps: (hps["beta"] * b.logratios()).detach(),
    fills=lambda m: {"delta": m.mean},
)


@objective(
    name="bco",
    shape="unpaired",
    needs_reference=True,
    paper="Binary Classifier Optimization for Large Language Model Alignment",
    formula="r = βρ;  desirable: −log σ(r − δ);  undesirable: −log σ(−(r − δ)),  δ = running mean of r (no grad)",
    summary="BCO: binary cross-entropy with the implicit reward as logit, shifted by the mean reward δ",
    hyperparameters=(params.beta(), *WEIGHTS),
    optional_inputs=frozenset({"delta"}),
    state=(BCO_DELTA,),
    notes="The paper's δ is a running mean of the rewards over training. The trainer keeps it: "
    "every micro-batch's detached rewards β·ρ (both labels, all processes) are folded in before "
    "its loss, and it is saved with checkpoints. In compute_unpaired() pass delta= (e.g. a "
    "RunningMoments' mean); without it, this batch's mean reward is used. The paper's optional "
    "density-ratio (underlying distribution matching) weights are not included.",
    differences=(
        ("BCO reward shift δ", "BCOTrainer (removed): running mean", "running mean of rewards",
         "the trainer's running mean (all steps, all processes, saved with checkpoints)",
         "`delta=` in `compute_unpaired`; without it the batch mean"),
    ),
)
def bco(b: UnpairedBatch, *, beta: float, desirable_weight: float, undesirable_weight: float) -> ObjectiveOutput:
    """BCO: −log σ(βρ − δ) for desirable, −log σ(−(βρ − δ)) for undesirable.

    A binary classifier whose logit is the implicit reward separates thumbs-up from
    thumbs-down completions; its cross-entropy upper-bounds the DPO loss. Shifting the
    logit by the mean reward δ keeps the boundary between the two groups as both move.
    """
    r = beta * b.logratios()
    delta = r.detach().mean() if b.delta is None else b.delta.to(r.dtype).detach()
    losses = _weighted(b.labels, -F.logsigmoid(r - delta), -F.logsigmoid(-(r - delta)), desirable_weight, undesirable_weight)
    return b.output(losses, beta)


@objective(
    name="npo",
    shape="unpaired",
    needs_reference=True,
    paper="Negative Preference Optimization: From Catastrophic Collapse to Effective Unlearning",
    formula="(2/β)·log(1 + (π/π_ref)^β) = (2/β)·softplus(β·ρ)   (undesirable examples only)",
    summary="NPO: unlearning loss on negatives only, a bounded replacement for gradient ascent",
    hyperparameters=(params.beta(0.1, typical="0.05-0.5 (paper: 0.1)"),),
    notes="Every example must be undesirable (labels all False, or labels=None). Combine with a "
    "separate retain/SFT loss for desirable data.",
)
def npo(b: UnpairedBatch, *, beta: float) -> ObjectiveOutput:
    """NPO: (2/β)·log(1 + exp(βρ)) on the forget set.

    Gradient ascent on unwanted completions diverges quickly (catastrophic collapse).
    NPO is DPO with only a rejected response: its gradient is gradient ascent's scaled
    by a weight that shrinks as the completion becomes unlikely, so collapse is
    exponentially slower. As β → 0 it becomes gradient ascent.
    """
    if bool(b.labels.any()):
        rows = torch.nonzero(b.labels).flatten().tolist()[:10]
        raise ValueError(
            f"trains on undesirable examples only, but rows {rows} are labelled desirable; "
            "filter them out (or use kto / bco for mixed labels)"
        )
    return b.output((2.0 / beta) * F.softplus(beta * b.logratios()), beta)


@objective(
    name="sft",
    aliases=("nll",),
    shape="sft",
    needs_reference=False,
    needs_lengths=True,
    trl_name="sft",
    paper="Supervised fine-tuning by maximum likelihood (no single source paper)",
    formula="reduction='batch': Σ_b(−π_b) / Σ_b |y_b| for every example (TRL); in the trainer "
    "−π_b / mean |y| of the step, whose mean is the step's token mean;  'example': −π/|y|",
    summary="SFT/NLL: token-mean negative log-likelihood of the (chosen / desirable) response",
    hyperparameters=(
        Hyperparameter(
            "nll_reduction",
            "batch",
            "'batch': token mean over the whole batch, broadcast to each example (TRL's sft); "
            "'example': each example's own token mean",
            choices=("batch", "example"),
        ),
    ),
    optional_inputs=frozenset({"step_mean_length"}),
    notes="In compute() it trains on the chosen responses (TRL loss_type='sft'); in "
    "compute_unpaired() on the examples, which must all be desirable (or labels=None). With "
    "'batch' the trainer passes step_mean_length (the mean response length of the whole "
    "optimizer step), so the step's loss is Σ(−π)/Σ|y| over all its micro-batches and processes, "
    "as transformers' num_items_in_batch does; without it the token mean is the batch's.",
    differences=(
        ("TRL `sft` loss type", "batch token mean, broadcast", "—", "`nll_reduction=\"batch\"` (TRL)", "`\"example\"`"),
    ),
)
def sft(b: UnpairedBatch, *, nll_reduction: str) -> ObjectiveOutput:
    """SFT: negative log-likelihood per response token.

    Plain maximum likelihood on good responses. With 'batch' reduction every example
    carries the batch's token-mean NLL, so long responses weigh by their token count,
    exactly like a language-model loss over the batch.
    """
    if not bool(b.labels.all()):
        rows = torch.nonzero(~b.labels).flatten().tolist()[:10]
        raise ValueError(f"trains on desirable examples only, but rows {rows} are labelled undesirable")
    lengths = b.require_lengths()
    if nll_reduction == "example":
        return ObjectiveOutput(nll(b.policy_logps, lengths))
    if b.step_mean_length is not None:  # the step's token mean, whatever its split
        return ObjectiveOutput(-b.policy_logps / b.step_mean_length.to(b.policy_logps.dtype))
    total = -b.policy_logps.sum() / lengths.sum().to(b.policy_logps.dtype)
    return ObjectiveOutput(total.expand(b.policy_logps.shape))
