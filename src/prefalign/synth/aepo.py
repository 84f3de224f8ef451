"""``aepo``: annotation-efficient preference optimization (Jinnai et al. 2024, "Annotation-
Efficient Preference Optimization for Language Model Alignment").

AEPO spends the labels on a few responses per prompt that are both typical and diverse. From a
prompt's N responses it selects k by diverse minimum Bayes risk: with M the responses' pairwise
similarity matrix (the diagonal left out), the subset S maximises
f(S) = Σ_{i∈S} Σ_{j≠i} M[j, i] / ((N − 1) k) − λ · Σ_{i≠j∈S} M[i, j] / (k (k − 1)),
its first term the subset's mean similarity to all responses (quality, as MBR estimates it), its
second the subset's internal similarity (λ: ``diversity_penalty``). S is found as the authors'
code does, by greedy best-first search, then improved by swapping one member for a non-member
while that raises f (deterministic here; their local search swaps at random). The subset's best
and worst by score make the pair (`make_pair`: ties and ``--min-gap`` counted).

Differences, written down: similarity is the character n-gram Jaccard of the normalised texts
(`prefalign.data.similarity`; the paper uses sentence-embedding cosine, which needs a model
download), and every response is still scored by synth's scorer (AEPO's saving is to score only
the subset; the pairs written are the same).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from prefalign.core.registry import Option
from prefalign.data.similarity import jaccard, normalise

from .pairs import make_pair
from .strategies import pair_strategy


def dmbr_objective(matrix: Sequence[Sequence[float]], subset: Sequence[int],
                   penalty: float) -> float:
    """f(S) of the module docstring (``matrix``'s diagonal is ignored)."""
    n, k = len(matrix), len(subset)
    quality = sum(matrix[j][i] for i in subset for j in range(n) if j != i) / ((n - 1) * k)
    if k < 2:
        return quality
    inner = sum(matrix[i][j] for i in subset for j in subset if i != j)
    return quality - penalty * inner / (k * (k - 1))


def dmbr_select(matrix: Sequence[Sequence[float]], k: int, penalty: float) -> list[int]:
    """The k positions diverse MBR selects: greedy, then single swaps while f rises."""
    n = len(matrix)
    chosen: list[int] = []
    for _ in range(min(k, n)):
        best = max((i for i in range(n) if i not in chosen),
                   key=lambda i: (dmbr_objective(matrix, chosen + [i], penalty), -i))
        chosen.append(best)
    improved = True
    while improved:
        improved = False
        current = dmbr_objective(matrix, chosen, penalty)
        for a in list(chosen):
            for b in range(n):
                if b in chosen:
                    continue
                trial = [b if x == a else x for x in chosen]
                value = dmbr_objective(matrix, trial, penalty)
                if value > current + 1e-12:
                    chosen, current, improved = trial, value, True
                    break
            if improved:
                break
    return sorted(chosen)


@pair_strategy(
    "aepo", output="pairwise",
    summary="the best vs the worst of k responses chosen for quality and diversity by diverse "
            "MBR (character n-gram similarity)",
    paper="Annotation-Efficient Preference Optimization for Language Model Alignment "
          "(Jinnai et al. 2024)",
    options=[
        Option("k", int, 2, "responses selected per prompt", rule=(lambda v: v >= 2, ">= 2")),
        Option("diversity_penalty", float, 1.0, "λ, the weight of the subset's internal "
               "similarity", rule=(lambda v: v >= 0, ">= 0")),
        Option("n", int, 3, "characters per n-gram of the similarity",
               rule=(lambda v: v >= 1, ">= 1")),
    ])
def aepo(item, kept, opts, dropped: Counter) -> list:
    options = opts.strategy_options
    texts = [normalise(k[1]) for k in kept]
    matrix = [[jaccard(a, b, options["n"]) for b in texts] for a in texts]
    subset = [kept[i] for i in dmbr_select(matrix, options["k"], options["diversity_penalty"])]
    best = max(subset, key=lambda k: k[2])
    worst = min(subset, key=lambda k: k[2])
    pair = make_pair(item, best, worst, opts, dropped)
    return [] if pair is None else [pair]
