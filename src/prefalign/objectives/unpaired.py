"""Unpaired objectives: each example is one completion with a desirable/undesirable label
(KTO, BCO, APO-zero unpaired), negatives only (NPO), or positives only (SFT).

ρ = log π(y|x) − log π_ref(y|x) per example; labels True = desirable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import params
from .batches import UnpairedBatch
from .common import log_ratio, nll
from .registry import Hyperparameter, objective

WEIGHTS = (
    Hyperparameter("desirable_weight", 1.0, "weight of the desirable examples' losses", "1; raise when desirable are rarer", low=0.0),
    Hyperparameter("undesirable_weight", 1.0, "weight of the undesirable examples' losses", "1; ratio λ_D·n_D/(λ_U·n_U) in [1, 4/3] (KTO paper)", low=0.0),
)


def _weighted(labels: Tensor, good: Tensor, bad: Tensor, desirable_weight: float, undesirable_weight: float) -> Tensor:
    return torch.where(labels, desirable_weight * good, undesirable_weight * bad)


def kto_reference_point(extras: dict) -> Tensor:
    """KTO's z: clamp(mean(kl_logps − ref_kl_logps), min=0) or clamp(kl, min=0), detached."""
    kl, kl_logps, ref_kl_logps = extras.get("kl"), extras.get("kl_logps"), extras.get("ref_kl_logps")
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
    "mismatched pairs: completions shifted by one within the batch, as TRL) as "
    "max(0, mean(kl_logps − ref_kl_logps)), or given as kl. Either way it is detached. In "
    "distributed training, gather before averaging (or pass kl), as TRL does.",
)
def kto(b: UnpairedBatch, *, beta: float, desirable_weight: float, undesirable_weight: float) -> Tensor:
    """KTO: 1 − σ(β(ρ − z)) for desirable, 1 − σ(β(z − ρ)) for undesirable, weighted.

    Kahneman-Tversky's prospect theory values outcomes relative to a reference point,
    with a saturating value function. KTO applies this to the implicit reward ρ with the
    policy's KL from the reference as the reference point, so it learns from thumbs-up /
    thumbs-down labels alone, no pairs needed.
    """
    z = kto_reference_point(b.extras).to(b.policy_logps.dtype)
    rho = log_ratio(b.policy_logps, b.ref_logps)
    good = 1.0 - torch.sigmoid(beta * (rho - z))
    bad = 1.0 - torch.sigmoid(beta * (z - rho))
    return _weighted(b.labels, good, bad, desirable_weight, undesirable_weight)


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
def apo_zero_unpaired(b: UnpairedBatch, *, beta: float, desirable_weight: float, undesirable_weight: float) -> Tensor:
    """APO-zero (unpaired): 1 − σ(βρ) for desirable, σ(βρ) for undesirable.

    The anchored objective without pairs: each completion's likelihood is moved up or
    down relative to the reference according to its label, with no KL reference point.
    """
    rho = log_ratio(b.policy_logps, b.ref_logps)
    s = torch.sigmoid(beta * rho)
    return _weighted(b.labels, 1.0 - s, s, desirable_weight, undesirable_weight)


@objective(
    name="bco",
    shape="unpaired",
    needs_reference=True,
    paper="Binary Classifier Optimization for Large Language Model Alignment",
    formula="r = βρ;  desirable: −log σ(r − δ);  undesirable: −log σ(−(r − δ)),  δ = delta input or batch mean of r (no grad)",
    summary="BCO: binary cross-entropy with the implicit reward as logit, shifted by the mean reward δ",
    hyperparameters=(params.beta(), *WEIGHTS),
    optional_inputs=frozenset({"delta"}),
    notes="The paper's δ is a running mean of the rewards over training: keep a RunningMoments, "
    "update it with the detached rewards β·ρ of each batch (both labels) and pass delta=its mean. "
    "Without delta, this batch's mean reward is used. The paper's optional density-ratio "
    "(underlying distribution matching) weights are not included.",
)
def bco(b: UnpairedBatch, *, beta: float, desirable_weight: float, undesirable_weight: float) -> Tensor:
    """BCO: −log σ(βρ − δ) for desirable, −log σ(−(βρ − δ)) for undesirable.

    A binary classifier whose logit is the implicit reward separates thumbs-up from
    thumbs-down completions; its cross-entropy upper-bounds the DPO loss. Shifting the
    logit by the mean reward δ keeps the boundary between the two groups as both move.
    """
    r = beta * log_ratio(b.policy_logps, b.ref_logps)
    delta = b.extras.get("delta")
    delta = r.detach().mean() if delta is None else torch.as_tensor(delta, dtype=r.dtype).detach()
    return _weighted(b.labels, -F.logsigmoid(r - delta), -F.logsigmoid(-(r - delta)), desirable_weight, undesirable_weight)


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
def npo(b: UnpairedBatch, *, beta: float) -> Tensor:
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
    rho = log_ratio(b.policy_logps, b.ref_logps)
    return (2.0 / beta) * F.softplus(beta * rho)


@objective(
    name="sft",
    aliases=("nll",),
    shape="sft",
    needs_reference=False,
    needs_lengths=True,
    trl_name="sft",
    paper="Supervised fine-tuning by maximum likelihood (no single source paper)",
    formula="reduction='batch': Σ_b(−π_b) / Σ_b |y_b| for every example (TRL);  'example': −π/|y|",
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
    notes="In compute() it trains on the chosen responses (TRL loss_type='sft'); in "
    "compute_unpaired() on the examples, which must all be desirable (or labels=None).",
)
def sft(b: UnpairedBatch, *, nll_reduction: str) -> Tensor:
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
        return nll(b.policy_logps, lengths)
    total = -b.policy_logps.sum() / lengths.sum().to(b.policy_logps.dtype)
    return total.expand(b.policy_logps.shape)
