"""``rso``: statistical rejection sampling (Liu et al. 2024, "Statistical Rejection Sampling
Improves Preference Optimization").

RSO wants pairs drawn from the optimal policy π*(y|x) ∝ π_sft(y|x)·exp(r(x, y)/β), not from the
sampling policy. From a prompt's N scored samples (drawn from the policy) it accepts samples by
rejection sampling, the paper's Algorithm 1: sweep over the candidates still left, in sample
order; accept candidate i with probability exp((r_i − r_max)/β), r_max the highest score among
the candidates left (so the best is always accepted); an accepted one leaves the candidates;
sweep again until ``accepted`` samples are accepted or none is left. The uniform draws are
seeded per prompt (``sample_seed(seed, prompt, -2)``), so a rerun accepts the same samples. The
accepted samples are then paired: best vs worst of them (``pairing=best-vs-worst``) or every
pair (``pairing=all-pairs``), each through `make_pair` (ties and ``--min-gap`` counted).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Sequence

from prefalign.core.registry import Option
from prefalign.generation.types import sample_seed

from .pairs import make_pair
from .strategies import pair_strategy


def rejection_sample(scores: Sequence[float], beta: float, accepted: int,
                     rng: random.Random) -> list[int]:
    """The positions RSO's Algorithm 1 accepts from ``scores``, in the order accepted."""
    left = list(range(len(scores)))
    out: list[int] = []
    while left and len(out) < accepted:
        best = max(scores[i] for i in left)
        taken = []
        for i in left:
            if rng.random() < math.exp((scores[i] - best) / beta):
                out.append(i)
                taken.append(i)
                if len(out) == accepted:
                    break
        left = [i for i in left if i not in taken]
    return out


@pair_strategy(
    "rso", output="pairwise",
    summary="rejection sampling toward π* ∝ π·exp(r/β): accept samples with probability "
            "exp((r − r_max)/β), then pair the accepted (best vs worst, or all pairs)",
    paper="Statistical Rejection Sampling Improves Preference Optimization (Liu et al. 2024)",
    options=[
        Option("beta", float, 0.5, "β of π*, in the scores' units",
               rule=(lambda v: math.isfinite(v) and v > 0, "a finite number > 0")),
        Option("accepted", int, 4, "samples to accept per prompt", rule=(lambda v: v >= 2, ">= 2")),
        Option("pairing", str, "best-vs-worst", "how the accepted are paired",
               rule=(lambda v: v in ("best-vs-worst", "all-pairs"), "best-vs-worst or all-pairs")),
    ])
def rso(item, kept, opts, dropped: Counter) -> list:
    options = opts.strategy_options
    rng = random.Random(sample_seed(opts.seed, item.index, -2))
    chosen = rejection_sample([k[2] for k in kept], options["beta"], options["accepted"], rng)
    if len(chosen) < 2:
        dropped["too_few_accepted"] += 1
        return []
    accepted = [kept[i] for i in chosen]
    if options["pairing"] == "best-vs-worst":
        best = max(accepted, key=lambda k: k[2])  # the first of equal maxima in acceptance order
        worst = min(accepted, key=lambda k: k[2])
        pairs = [make_pair(item, best, worst, opts, dropped)]
    else:
        ordered = sorted(accepted, key=lambda k: (-k[2], k[0]))
        pairs = [make_pair(item, a, b, opts, dropped)
                 for x, a in enumerate(ordered) for b in ordered[x + 1:]]
    return [p for p in pairs if p is not None]
