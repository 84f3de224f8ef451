"""``margin``: select pairs by their DPO implicit reward margin ("Not All Preference Pairs Are
Created Equal: A Recipe for Annotation-Efficient Iterative Preference Learning", Yang et al. 2024).

The margin of a pair under a policy π and a reference π_ref is
m = β·[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))], the sequence log-probs
computed with the engine's packed forward. A small margin is a pair the policy does not yet
separate: the paper finds those the ones worth labelling, with the same quality from a fraction
of the data. The filter keeps ``fraction`` of the pairs (rounded up) with the smallest margins
(``keep=largest``: the largest), ties in record order, each kept pair with its
``implicit_margin`` column; the others are dropped as ``larger_margin`` (``smaller_margin``).
"""

from __future__ import annotations

import math
from collections import Counter

from prefalign.core.registry import Option
from prefalign.scoring.pair_signals import pair_logps

from . import pair_filter, require_pairs


def implicit_margins(policy: list[tuple[float, float]], reference: list[tuple[float, float]],
                     beta: float) -> list[float]:
    return [beta * ((pw - rw) - (pl - rl)) for (pw, pl), (rw, rl) in zip(policy, reference)]


@pair_filter(
    "margin", summary="all but the fraction of pairs with the smallest (or largest) DPO implicit "
                      "reward margin under a policy and a reference",
    paper="Not All Preference Pairs Are Created Equal: A Recipe for Annotation-Efficient "
          "Iterative Preference Learning (Yang et al. 2024)",
    options=[
        Option("model", str, None, "the policy's model folder", required=True),
        Option("ref_model", str, None, "the reference's model folder", required=True),
        Option("beta", float, 0.1, "β of the implicit reward",
               rule=(lambda v: math.isfinite(v) and v > 0, "a finite number > 0")),
        Option("fraction", float, 0.5, "share of the pairs kept",
               rule=(lambda v: 0 < v <= 1, "in (0, 1]")),
        Option("keep", str, "smallest", "which margins are kept",
               rule=(lambda v: v in ("smallest", "largest"), "smallest or largest")),
        Option("device", str | None, None, "where the models run (default: cuda when "
                                           "available, else cpu)"),
    ], pairs_only=True)
def margin(records, options, dropped: Counter) -> list:
    require_pairs(records, "margin")
    if not records:
        return []
    policy, _ = pair_logps(records, options["model"], device=options["device"])
    reference, _ = pair_logps(records, options["ref_model"], device=options["device"])
    usable = [i for i in range(len(records)) if policy[i] is not None and reference[i] is not None]
    margins = dict(zip(usable, implicit_margins([policy[i] for i in usable],
                                                [reference[i] for i in usable], options["beta"])))
    order = sorted(usable, key=lambda i: margins[i])  # stable: record order
    if options["keep"] == "largest":
        order = sorted(usable, key=lambda i: -margins[i])
    count = math.ceil(options["fraction"] * len(usable))
    chosen = set(order[:count])
    reason = "larger_margin" if options["keep"] == "smallest" else "smaller_margin"
    kept = []
    for i, record in enumerate(records):
        if i not in margins:
            dropped["untokenizable"] += 1  # no exact prompt/response boundary
        elif i in chosen:
            record.meta["implicit_margin"] = margins[i]
            kept.append(record)
        else:
            dropped[reason] += 1
    return kept
