"""Batched no-grad log-probs of every example, with the engine's per-token statistics
(`prefalign.engine.batched.batched_logps`)."""

from __future__ import annotations

from typing import Sequence

from prefalign.engine.batched import BatchedLogps, batched_logps
from prefalign.engine.forward import PackedLogProbModel

STATS = ("topk_entropy", "topk_mass")
# [E, K] summed log-probs (float64) and lengths, and flat per-token stats (float64) with
# ``sequence_index`` = example * K + slot over the whole data set
EvalLogps = BatchedLogps


def compute_logps(model: PackedLogProbModel, examples: Sequence, *, pad_token_id: int,
                  max_tokens: int = 8192, stats: Sequence[str] = STATS, topk: int = 10
                  ) -> EvalLogps:
    """Run ``model`` over ``examples`` in groups of about ``max_tokens`` tokens (packed rows of
    at most ``max_tokens``)."""
    return batched_logps(model, examples, pad_token_id=pad_token_id, max_tokens=max_tokens,
                         row_capacity=max_tokens, stats=stats, topk=topk)
