"""Batched no-grad log-probs of every example, with the engine's per-token statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from prefalign.engine.forward import PackedLogProbModel
from prefalign.engine.layout import pack
from prefalign.engine.reference import batches_by_tokens

STATS = ("topk_entropy", "topk_mass")


@dataclass
class EvalLogps:
    """[E, K] summed log-probs and lengths, and flat per-token stats with ``sequence_index``
    = example * K + slot over the whole data set."""

    logps: torch.Tensor
    lengths: torch.Tensor
    stats: dict[str, torch.Tensor]
    sequence_index: torch.Tensor
    num_responses: int


@torch.no_grad()
def compute_logps(model: PackedLogProbModel, examples: Sequence, *, pad_token_id: int,
                  max_tokens: int = 8192, stats: Sequence[str] = STATS, topk: int = 10
                  ) -> EvalLogps:
    """Run ``model`` over ``examples`` in groups of about ``max_tokens`` tokens."""
    if not examples:
        raise ValueError("no examples to score")
    device = next(model.parameters()).device
    k = max(len(ex.responses) for ex in examples)
    logps = torch.zeros(len(examples), k, dtype=torch.float64)
    lengths = torch.zeros(len(examples), k, dtype=torch.long)
    flat: dict[str, list[torch.Tensor]] = {s: [] for s in stats}
    index: list[torch.Tensor] = []
    model.eval()
    for group in batches_by_tokens(examples, max_tokens):
        batch = pack([examples[i] for i in group], pad_token_id=pad_token_id,
                     row_capacity=max_tokens).to(device)
        out = model(batch, stats=tuple(stats), topk=topk)
        kb = out.logps.shape[1]
        logps[group, :kb] = out.logps.double().cpu()
        lengths[group, :kb] = out.lengths.long().cpu()
        seq = out.sequence_index.cpu()
        index.append((group[0] + seq // kb) * k + seq % kb)
        for s in stats:
            flat[s].append(out.stats[s].double().cpu())
    return EvalLogps(logps, lengths, {s: torch.cat(v) for s, v in flat.items()},
                     torch.cat(index), k)

