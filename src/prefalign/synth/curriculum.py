"""``curriculum``: Curry-DPO's ranked pairs (Pattnaik et al. 2024, "Curry-DPO: Enhancing
Alignment using Curriculum Learning & Ranked Preferences").

From a prompt's scored responses, the best is paired with each strictly worse one, and the pairs
are ordered by their score gap, largest first: a large gap is an easy pair, a small one a hard
pair. Each pair carries a ``curriculum`` column, its level (0 = the prompt's easiest pair),
which ``prefalign train --order curriculum`` trains in ascending order (easy to hard, shuffled
within a level). ``pairs`` keeps at most that many per prompt (the easiest; default: all).
Pairs go through `make_pair` (ties and ``--min-gap`` counted); the level is the pair's rank
among the prompt's pairs written.
"""

from __future__ import annotations

from collections import Counter

from prefalign.core.registry import Option

from .pairs import make_pair
from .strategies import pair_strategy

LEVEL = "curriculum"  # the column


@pair_strategy(
    "curriculum", output="pairwise",
    summary="the best vs each worse response, ordered by gap (easy to hard) with a `curriculum` "
            "level column for `train --order curriculum`",
    paper="Curry-DPO: Enhancing Alignment using Curriculum Learning & Ranked Preferences "
          "(Pattnaik et al. 2024)",
    options=[Option("pairs", int | None, None, "pairs per prompt at most (the easiest)",
                    rule=(lambda v: v is None or v >= 1, ">= 1, or null"))])
def curriculum(item, kept, opts, dropped: Counter) -> list:
    best = max(kept, key=lambda k: k[2])  # the first of equal maxima
    # the lowest score first: the largest gap, the easiest pair (equal scores by sample order)
    others = sorted((k for k in kept if k is not best), key=lambda k: (k[2], k[0]))
    pairs = [p for p in (make_pair(item, best, k, opts, dropped) for k in others) if p is not None]
    limit = opts.strategy_options["pairs"]
    if limit is not None and len(pairs) > limit:
        dropped["beyond_curriculum_pairs"] += len(pairs) - limit
        pairs = pairs[:limit]
    for level, pair in enumerate(pairs):
        pair.meta[LEVEL] = level
    return pairs
