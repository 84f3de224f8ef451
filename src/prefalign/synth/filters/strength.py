"""``strength``: drop the pairs whose preference strength is below a floor.

A pair's ``strength`` is the share of the verdicts behind its scores that prefer its chosen
response: a jury's members (``jury:``) or a judge's principles (``judge:...?per_principle=1``),
a tie counting half. A pair the verdicts split on is a weak preference (Secrets of RLHF II:
ambiguous pairs hurt a reward model; SALMON / SDSD: principles that disagree); the filter drops
those below ``min`` (``weak_preference``). A pair without a strength is refused, naming it: the
scorer gave no votes.
"""

from __future__ import annotations

from collections import Counter

from prefalign.core.registry import Option

from . import describe_record, pair_filter, require_pairs


@pair_filter("strength", summary="pairs whose preference strength (the share of a jury's or "
                                 "a judge's principles' verdicts preferring the chosen) is below "
                                 "min",
             options=[Option("min", float, 0.75, "smallest strength kept",
                             rule=(lambda v: 0 <= v <= 1, "in [0, 1]"))], pairs_only=True)
def strength(records, options, dropped: Counter) -> list:
    require_pairs(records, "strength")
    kept = []
    for i, record in enumerate(records):
        value = record.meta.get("strength")
        if value is None:
            raise ValueError(f"filter strength: {describe_record(record, i)} has no strength; "
                             "it comes from a scorer with votes (jury:..., "
                             "judge:...?per_principle=1)")
        if value < options["min"]:
            dropped["weak_preference"] += 1
        else:
            kept.append(record)
    return kept
