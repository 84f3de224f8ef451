"""From the engine's log-probs to per-example losses and the logged metrics.

This is the one place that knows how each data shape maps onto the objectives' typed batches:
pairwise examples are (chosen, rejected) = responses (0, 1); unpaired examples carry their
completion as response 0 and, for objectives with a KL reference point (KTO), a mismatched
completion (one of another prompt) as response 1; listwise examples hold K responses with
scores; SFT uses response 0.

:func:`build_batch` builds the objective's typed batch once per micro-batch from the policy's
and the reference's ``SequenceLogps`` and the packed batch's metadata (margins, labels,
scores), filling exactly the fields the objective reads; :func:`compute_step_loss` runs the
objective on it (with the trainer's running statistics) and computes the metrics from its
output. Nothing here reaches back to the tokenized examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from prefalign import objectives
from prefalign.engine.forward import SequenceLogps
from prefalign.engine.layout import PackedBatch
from prefalign.objectives import ListwiseBatch, Objective, ObjectiveState, PairwiseBatch, UnpairedBatch

TOKEN_FIELDS = frozenset({"chosen_token_logps", "rejected_token_logps", "chosen_token_mask",
                          "rejected_token_mask"})
REF_TOKEN_FIELDS = frozenset({"ref_chosen_token_logps", "ref_rejected_token_logps"})
SUMSQ_FIELDS = frozenset({"chosen_token_log_sumsq", "rejected_token_log_sumsq"})
TOKEN_KL_INPUTS = frozenset({"chosen_seq_kl", "rejected_seq_kl"})
KL_INPUTS = frozenset({"kl_logps", "ref_kl_logps"})
EXTRA_REF_FIELDS = frozenset({"ref_extra_chosen_logps", "ref_extra_rejected_logps"})


@dataclass
class StepLoss:
    losses: torch.Tensor  # [E] per-example losses (differentiable)
    metrics: dict[str, torch.Tensor]  # per-example values to average for logging, [E] each


def needs_token_kl(spec: Objective) -> bool:
    """TDPO: the objective takes each response's summed per-token KL(π_ref ‖ π)."""
    return bool(TOKEN_KL_INPUTS & set(spec.inputs))


def needs_kl_completions(spec: Objective) -> bool:
    """KTO: each example needs a mismatched completion for the KL reference point."""
    return spec.shape == "unpaired" and bool(KL_INPUTS & (spec.inputs | spec.optional_inputs))


def needed_statistics(spec: Objective, hyperparameters: dict[str, Any]) -> tuple[str, ...]:
    """Per-token statistics the engine must compute for this objective (WPO's log Σp²)."""
    return ("log_sum_p2",) if SUMSQ_FIELDS & spec.reads(hyperparameters) else ()


def build_batch(spec: Objective, hyperparameters: dict[str, Any], packed: PackedBatch,
                policy: SequenceLogps, reference: SequenceLogps | None, *,
                step_mean_length: float | None = None):
    """The typed batch ``spec`` reads, from the engine's results and the packed metadata;
    ``step_mean_length``: the mean response length of the optimizer step this batch is part of
    (for token means over the step)."""
    reads = spec.reads(hyperparameters)
    logps = policy.logps
    lengths = policy.lengths.to(logps.device)
    ref = None if reference is None or not spec.needs_reference else reference.logps.to(logps.device, logps.dtype)
    col = lambda t, k: None if t is None else t[:, k]  # noqa: E731
    if spec.shape == "pairwise":
        fields: dict[str, Any] = {}
        if "margin" in reads:
            fields["margin"] = _per_pair(spec, packed.margins, logps, "margin", "a margin "
                                         "column, or score_chosen and score_rejected")
        if "strength" in reads:
            fields["strength"] = _per_pair(spec, packed.strengths, logps, "strength",
                                           "a strength column")
        if TOKEN_KL_INPUTS & reads:
            if policy.kl is None:
                raise ValueError(f"objective {spec.name!r} needs the per-token KL against the "
                                 "reference; run the policy with kl_reference=")
            fields.update(chosen_seq_kl=policy.kl[:, 0], rejected_seq_kl=policy.kl[:, 1])
        if (TOKEN_FIELDS | REF_TOKEN_FIELDS | SUMSQ_FIELDS) & reads:
            fields.update(_token_views(reads, policy, reference))
        if "step_mean_length" in reads and step_mean_length is not None:  # a mixture's sft
            fields["step_mean_length"] = torch.tensor(float(step_mean_length),
                                                      device=logps.device)
        if EXTRA_REF_FIELDS & reads:  # MRPO: the further references' log-probs
            extra = None if reference is None else reference.extra_logps
            if extra is None:
                raise ValueError(f"objective {spec.name!r} needs two or more reference models "
                                 "(give --ref-model for each)")
            extra = extra.to(logps.device, logps.dtype)
            fields.update(ref_extra_chosen_logps=extra[:, 0], ref_extra_rejected_logps=extra[:, 1])
        return PairwiseBatch(logps[:, 0], logps[:, 1], col(ref, 0), col(ref, 1),
                             lengths[:, 0], lengths[:, 1], **fields)
    if spec.shape == "listwise":
        if packed.scores is None:
            raise ValueError(f"objective {spec.name!r} needs each list's scores")
        mask = lengths > 0
        scores = packed.scores.to(logps.device, logps.dtype)
        return ListwiseBatch(logps, ref, scores, lengths, mask)
    # unpaired and sft: response 0 is the completion
    n = logps.shape[0]
    labels = (packed.labels.to(logps.device) if packed.labels is not None
              else torch.ones(n, dtype=torch.bool, device=logps.device))
    fields = {}
    if KL_INPUTS & reads and logps.shape[1] > 1:
        fields.update(kl_logps=logps[:, 1].detach(), ref_kl_logps=col(ref, 1))
    if "step_mean_length" in reads and step_mean_length is not None:
        fields["step_mean_length"] = torch.tensor(float(step_mean_length), device=logps.device)
    if "values" in reads:  # DRO: the policy's value head
        if policy.values is None:
            raise ValueError(f"objective {spec.name!r} needs each prompt's value V(x): build "
                             "the policy with value_head=True")
        fields["values"] = policy.values
    if "feedback" in reads and packed.scores is not None:  # the data's reward column
        fields["feedback"] = packed.scores[:, 0].to(logps.device, logps.dtype)
    return UnpairedBatch(logps[:, 0], labels, col(ref, 0), lengths[:, 0], **fields)


def _per_pair(spec: Objective, values: torch.Tensor | None, like: torch.Tensor, name: str,
              source: str) -> torch.Tensor:
    """A per-pair value of the packed batch (a margin, a strength) on ``like``'s device."""
    if values is None or bool(torch.isnan(values).any()):
        # prepare_examples fills them (or refuses the data); only a batch packed elsewhere
        # gets here
        raise ValueError(f"objective {spec.name!r} needs every pair's {name} ({source})")
    return values.to(like.device, like.dtype)


def _token_views(reads, policy: SequenceLogps, reference: SequenceLogps | None) -> dict[str, torch.Tensor]:
    """Per-token tensors [E, T] for LD-DPO and WPO, padded once from the engine's flat ones."""
    padded, mask = policy.padded()
    out = dict(chosen_token_logps=padded[:, 0], rejected_token_logps=padded[:, 1],
               chosen_token_mask=mask[:, 0], rejected_token_mask=mask[:, 1])
    if REF_TOKEN_FIELDS & reads and reference is not None:
        ref_padded, _ = reference.padded()
        out.update(ref_chosen_token_logps=ref_padded[:, 0].to(padded.device, padded.dtype),
                   ref_rejected_token_logps=ref_padded[:, 1].to(padded.device, padded.dtype))
    if SUMSQ_FIELDS & reads and "log_sum_p2" in policy.stats:
        sq, _ = policy.padded(policy.stats["log_sum_p2"])
        out.update(chosen_token_log_sumsq=sq[:, 0], rejected_token_log_sumsq=sq[:, 1])
    return out


def compute_step_loss(spec: Objective, hyperparameters: dict[str, Any], packed: PackedBatch,
                      policy: SequenceLogps, reference: SequenceLogps | None, *,
                      state: ObjectiveState | None = None, update_state: bool = True,
                      reduce=None, step_mean_length: float | None = None) -> StepLoss:
    """Losses and metrics of one micro-batch: ``hyperparameters`` resolved once by the caller
    (``spec.resolve``); ``state`` holds the running statistics, updated with this batch
    (all processes through ``reduce``) unless ``update_state`` is False (evaluation);
    ``step_mean_length`` as for :func:`build_batch`."""
    batch = build_batch(spec, hyperparameters, packed, policy, reference,
                        step_mean_length=step_mean_length)
    out = objectives.run(spec, batch, hyperparameters, state=state, update_state=update_state,
                         reduce=reduce)
    metrics = objectives.batch_metrics(batch, out)
    for name, losses in (out.parts or {}).items():  # a mixture: each term's own loss
        metrics[f"loss/{name}"] = losses.detach()
    return StepLoss(out.losses, metrics)
