"""``rip``: R.I.P., "Better Models by Survival of the Fittest Prompts" (Yu et al. 2025).

A low-quality prompt shows in its responses: the rejected one scores low and the responses vary
widely, so the gap between chosen and rejected is large. R.I.P. keeps the pairs that pass both
tests: it drops a pair whose rejected score is below a floor (``low_rejected``) or whose gap
``score_chosen - score_rejected`` is above a ceiling (``large_gap``). Each threshold is a value
(``min_rejected``, ``max_gap``) or a quantile of the data set's pairs (``rejected_quantile``,
``gap_quantile``: the q-quantile with linear interpolation between the sorted values), not both.
It reads the scores synth writes (``score_chosen``, ``score_rejected``); a pair without them, or
a record that is not a pair, is refused rather than passed unjudged.
"""

from __future__ import annotations

import math
from collections import Counter

from . import Option, describe_record, pair_filter, require_pairs


def quantile(values: list[float], q: float) -> float:
    """The q-quantile of ``values`` with linear interpolation (NumPy's default, type 7)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


_UNIT = (lambda v: v is None or 0 <= v <= 1, "in [0, 1], or null")
_FINITE = (lambda v: v is None or math.isfinite(v), "a finite number, or null")


def check(options) -> None:
    for value, quant in (("min_rejected", "rejected_quantile"), ("max_gap", "gap_quantile")):
        if options[value] is not None and options[quant] is not None:
            raise ValueError(f"filter rip: give {value} or {quant}, not both")
    if all(v is None for v in options.values()):
        raise ValueError("filter rip: give a threshold, e.g. rip:rejected_quantile=0.25,"
                         "gap_quantile=0.75")


@pair_filter("rip", summary="pairs whose rejected score is below a floor or whose score gap is "
             "above a ceiling (values or data-set quantiles)",
             paper="R.I.P.: Better Models by Survival of the Fittest Prompts (Yu et al. 2025)",
             options=[
                 Option("rejected_quantile", float | None, None, "floor on the rejected score: "
                        "this quantile of the pairs' rejected scores", rule=_UNIT),
                 Option("gap_quantile", float | None, None, "ceiling on the gap: this quantile of "
                        "the pairs' gaps", rule=_UNIT),
                 Option("min_rejected", float | None, None, "floor on the rejected score, as a "
                        "value", rule=_FINITE),
                 Option("max_gap", float | None, None, "ceiling on the gap, as a value",
                        rule=_FINITE),
             ], pairs_only=True, check=check)
def rip(records, options, dropped: Counter) -> list:
    check(options)
    require_pairs(records, "rip")
    for i, record in enumerate(records):
        if record.score_chosen is None or record.score_rejected is None:
            raise ValueError(f"filter rip: {describe_record(record, i)} has no score_chosen/"
                             "score_rejected; R.I.P. needs each response's score")
    if not records:
        return []
    rejected = [float(r.score_rejected) for r in records]
    gaps = [float(r.score_chosen) - float(r.score_rejected) for r in records]
    floor = options["min_rejected"]
    if options["rejected_quantile"] is not None:
        floor = quantile(rejected, options["rejected_quantile"])
    ceiling = options["max_gap"]
    if options["gap_quantile"] is not None:
        ceiling = quantile(gaps, options["gap_quantile"])
    kept = []
    for record, low, gap in zip(records, rejected, gaps):
        if floor is not None and low < floor:
            dropped["low_rejected"] += 1
        elif ceiling is not None and gap > ceiling:
            dropped["large_gap"] += 1
        else:
            kept.append(record)
    return kept
