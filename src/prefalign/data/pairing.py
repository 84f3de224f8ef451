"""Which (chosen, rejected) pairs to take from one list of scores: the one selection behind both
ranked -> pairs conversion (`prefalign.data.convert.ranked_to_pairs`) and synth's pair builder
(`prefalign.synth.pairs.build_records`). Each caller applies its own filters (ties, ``min_gap``,
identical or whitespace-only texts) to the candidates returned here and counts what it drops.

Higher is better. The best is the first of equally scored maxima, the worst the first of equally
scored minima. Every candidate ``(c, r)`` has ``scores[c] >= scores[r]`` (a tie is returned, for
the caller to count, never swapped into a wrong order).

| strategy | candidates |
|---|---|
| ``best_vs_worst`` | best vs worst (West-of-N; the worst is the best when all tie) |
| ``best_vs_each`` | best vs every other position, in order |
| ``all_pairs`` | every two positions ``a < b``, the higher (``a`` on a tie) first |
| ``best_vs_second`` | best vs the best strictly worse (the worst when none is worse) |
| ``best_vs_random`` | best vs a strictly worse one drawn with ``rng`` (the worst when none is; no draw then) |
| ``sweet_spot`` | best vs the strictly worse one nearest ``mu - 2 sigma`` of all scores (the worst when none is) |
"""

from __future__ import annotations

import random
from typing import Sequence

PAIR_STRATEGIES = ("best_vs_worst", "best_vs_each", "all_pairs", "best_vs_second",
                   "best_vs_random", "sweet_spot")


def pair_indices(scores: Sequence[float], strategy: str, *,
                 rng: random.Random | None = None) -> list[tuple[int, int]]:
    """Candidate (chosen, rejected) positions in ``scores`` under ``strategy`` (see the module
    docstring); ``rng`` is needed by ``best_vs_random`` only. ``scores`` must not be empty."""
    if strategy not in PAIR_STRATEGIES:
        raise ValueError(f"unknown pair strategy {strategy!r}; use one of "
                         f"{', '.join(PAIR_STRATEGIES)}")
    k = len(scores)
    if k == 0:
        raise ValueError("no scores to pair")
    best = max(range(k), key=lambda i: scores[i])  # max and min return the first extreme
    if strategy == "all_pairs":
        return [(a, b) if scores[a] >= scores[b] else (b, a)
                for a in range(k) for b in range(a + 1, k)]
    if strategy == "best_vs_each":
        return [(best, j) for j in range(k) if j != best]
    worst = min(range(k), key=lambda i: scores[i])
    worse = [j for j in range(k) if scores[j] < scores[best]]
    if strategy == "best_vs_worst" or not worse:
        return [(best, worst)]
    if strategy == "best_vs_second":
        return [(best, max(worse, key=lambda j: scores[j]))]
    if strategy == "best_vs_random":
        if rng is None:
            raise ValueError("pair strategy 'best_vs_random' needs an rng")
        return [(best, worse[rng.randrange(len(worse))])]
    mu = sum(scores) / k  # sweet_spot
    sigma = (sum((v - mu) ** 2 for v in scores) / k) ** 0.5
    target = mu - 2 * sigma
    return [(best, min(worse, key=lambda j: abs(scores[j] - target)))]
