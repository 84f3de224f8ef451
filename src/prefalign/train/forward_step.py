"""One micro-batch through the model and the objective, the same for a training step and for
evaluation: pack the examples, look up (or run) the reference, run the policy, build the
objective's batch and compute its losses and metrics (`step_loss.compute_step_loss`); and
:class:`MetricSums`, the per-example metrics summed over micro-batches and processes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from prefalign.train.step_loss import StepLoss, compute_step_loss, needed_statistics


@dataclass
class ForwardResult:
    batch: Any  # the PackedBatch
    policy: Any  # the policy's SequenceLogps (its aux_loss for MoE routers)
    loss: StepLoss


class ForwardStep:
    """The run-constant parts of a micro-batch's forward and loss: the objective with its
    hyperparameters (resolved once for the run), the packing, the pad id and the device."""

    def __init__(self, spec, hparams: dict[str, Any], *, pack: Callable, pad_id: int,
                 row_tokens: int | None, token_kl: bool, device):
        self.spec, self.hparams, self.pack = spec, hparams, pack
        self.pad_id, self.row_tokens, self.token_kl, self.device = pad_id, row_tokens, token_kl, device
        self.stats = needed_statistics(spec, hparams)  # per-token statistics the engine computes
        # token means over a step need the step's mean response length: only SFT's read it
        self.reads_step_length = "step_mean_length" in spec.reads(hparams)

    def __call__(self, policy, examples: Sequence, indices: Sequence[int], reference, *,
                 state=None, update_state: bool = True, reduce=None,
                 step_mean_length: float | None = None) -> ForwardResult:
        batch = self.pack([examples[i] for i in indices], pad_token_id=self.pad_id,
                          row_capacity=self.row_tokens).to(self.device)
        ref = None
        if reference is not None:
            ref = reference(batch, indices, keep_head=True) if self.token_kl else reference(batch, indices)
        kl_reference = ref.head if (self.token_kl and ref is not None) else None
        policy_out = policy(batch, stats=self.stats, kl_reference=kl_reference)
        loss = compute_step_loss(self.spec, self.hparams, batch, policy_out, ref, state=state,
                                 update_state=update_state, reduce=reduce,
                                 step_mean_length=step_mean_length)
        return ForwardResult(batch, policy_out, loss)


class MetricSums:
    """Per-example values summed by name (NaN left out), averaged over every process."""

    def __init__(self):
        self.sums: dict[str, list[float]] = {}

    def add(self, name: str, values: torch.Tensor) -> None:
        values = values.detach().float()
        finite = ~torch.isnan(values)
        total, count = self.sums.get(name, [0.0, 0.0])
        self.sums[name] = [total + float(values[finite].sum()), count + float(finite.sum())]

    def add_weighted(self, name: str, values: torch.Tensor, weights: torch.Tensor) -> None:
        """A weighted mean's sums: Σ w·v and Σ w (rows with weight 0 left out)."""
        values, weights = values.detach().float(), weights.detach().float()
        keep = (weights > 0) & ~torch.isnan(values)
        total, count = self.sums.get(name, [0.0, 0.0])
        self.sums[name] = [total + float((values[keep] * weights[keep]).sum()),
                           count + float(weights[keep].sum())]

    def add_loss(self, loss: StepLoss, weights: torch.Tensor | None = None) -> None:
        """The loss (its weighted mean with ``weights``: the loss being optimised) and the
        per-example metrics (unweighted)."""
        if weights is None:
            self.add("loss", loss.losses)
        else:
            self.add_weighted("loss", loss.losses, weights)
        for name, values in loss.metrics.items():
            self.add(name, values)

    def means(self, accelerator) -> dict[str, float]:
        names = sorted(self.sums)
        if not names:
            return {}
        local = torch.tensor([self.sums[n] for n in names], device=accelerator.device)
        total = accelerator.reduce(local, reduction="sum")
        return {n: (float(t[0] / t[1]) if t[1] > 0 else float("nan")) for n, t in zip(names, total)}
