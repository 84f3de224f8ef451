"""Batched no-grad log-probs over a whole list of tokenized examples: the one loop behind the
reference cache (`engine.reference.compute_all_logps`), eval's log-prob metrics
(`eval.logps.compute_logps`) and the likelihood scorers (`scoring.models.LogProbModel`).

Examples are taken in order, in consecutive groups of about ``max_tokens`` tokens (and at most
``max_examples`` examples); each group is packed (`engine.layout.pack`) and run through the
`PackedLogProbModel` without gradient. The results are gathered on the CPU: summed log-probs
(float64, exact for any model dtype) and token counts [E, K], and, when asked, the per-token
log-probs and statistics flat over the whole list with ``sequence_index`` = e * K + k.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

from prefalign.engine.forward import PackedLogProbModel


def batches_by_tokens(examples: Sequence, max_tokens: int | None,
                      max_examples: int | None = None) -> Iterable[list[int]]:
    """Consecutive groups of example indices with about ``max_tokens`` tokens each (no bound
    when None), at most ``max_examples`` examples each (no bound when None)."""
    group, tokens = [], 0
    for i, ex in enumerate(examples):
        n = len(ex.prompt_ids) + sum(len(r) for r in ex.responses)
        if group and ((max_tokens is not None and tokens + n > max_tokens)
                      or (max_examples is not None and len(group) >= max_examples)):
            yield group
            group, tokens = [], 0
        group.append(i)
        tokens += n
    if group:
        yield group


@dataclass
class BatchedLogps:
    """Log-probs of every (example, response) of a list of examples, on the CPU.

    ``logps`` (float64) and ``lengths`` (long) are [E, K], 0 where an example has fewer than K
    responses. ``token_logps`` (with ``tokens=True``; the model's dtype) and each of ``stats``
    (float64) are flat over every response token of the list, in (example, response, token)
    order, with ``sequence_index`` = example * K + response.
    """

    logps: torch.Tensor
    lengths: torch.Tensor
    sequence_index: torch.Tensor
    num_responses: int
    token_logps: torch.Tensor | None = None
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


@torch.no_grad()
def batched_logps(model: PackedLogProbModel, examples: Sequence, *, pad_token_id: int,
                  max_tokens: int | None = 8192, max_examples: int | None = None,
                  row_capacity: int | None = None, stats: Sequence[str] = (), topk: int = 10,
                  tokens: bool = False, progress: bool = False,
                  desc: str = "log-probs") -> BatchedLogps:
    """Run ``model`` (in eval mode; every submodule's mode is restored after) over ``examples`` in groups
    (`batches_by_tokens`); ``row_capacity`` bounds a packed row's tokens (default: the group's
    longest example). ``stats`` are `engine.logprobs.token_statistics` names, with ``topk``."""
    if not examples:
        raise ValueError("no examples to score")
    device = next(model.parameters()).device
    k = max(len(ex.responses) for ex in examples)
    logps = torch.zeros(len(examples), k, dtype=torch.float64)
    lengths = torch.zeros(len(examples), k, dtype=torch.long)
    flat: dict[str, list[torch.Tensor]] = {s: [] for s in stats}
    token_parts: list[torch.Tensor] = []
    index: list[torch.Tensor] = []
    groups = list(batches_by_tokens(examples, max_tokens, max_examples))
    if progress:
        from tqdm.auto import tqdm

        groups = tqdm(groups, desc=desc, unit="batch")
    modes = [(m, m.training) for m in model.modules()]  # restored module by module after
    model.eval()
    try:
        for group in groups:
            batch = model.pack([examples[i] for i in group], pad_token_id=pad_token_id,
                               row_capacity=row_capacity).to(device)
            out = model(batch, stats=tuple(stats), topk=topk)
            kb = out.logps.shape[1]
            logps[group, :kb] = out.logps.double().cpu()
            lengths[group, :kb] = out.lengths.long().cpu()
            seq = out.sequence_index.cpu()
            index.append((group[0] + seq // kb) * k + seq % kb)
            if tokens:
                token_parts.append(out.token_logps.cpu())
            for s in stats:
                flat[s].append(out.stats[s].double().cpu())
    finally:
        for m, training in modes:
            m.training = training
    return BatchedLogps(logps, lengths, torch.cat(index), k,
                        torch.cat(token_parts) if tokens else None,
                        {s: torch.cat(v) for s, v in flat.items()})
