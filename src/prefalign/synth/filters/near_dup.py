"""``near-dup``: pairs whose chosen and rejected are near duplicates, repeated records, and
(optionally) prompts repeated across the data set.

Texts are compared as `prefalign.data.similarity` does: normalised (Unicode NFKC, case folded,
every run of characters that are not letters or digits one space), then by the Jaccard index of
their character n-gram sets. A pair at or above ``threshold`` teaches nothing
but noise (``near_duplicate_pair``); a record equal to an earlier one after normalisation (the
same prompt and responses, in order) is a ``duplicate_record``; with ``prompts=first`` only the
first record of each prompt is kept (``repeated_prompt``).
"""

from __future__ import annotations

from collections import Counter

from prefalign.data.records import PairRecord
from prefalign.data.similarity import jaccard, normalise, record_key

from . import Option, pair_filter


@pair_filter("near-dup", summary="pairs whose chosen and rejected are near duplicates "
             "(character n-gram Jaccard ≥ threshold), repeated records, and with prompts=first "
             "repeated prompts", options=[
                 Option("threshold", float, 0.9, "similarity at which a pair is dropped",
                        rule=(lambda v: 0 < v <= 1, "in (0, 1]")),
                 Option("n", int, 3, "characters per n-gram", rule=(lambda v: v >= 1, ">= 1")),
                 Option("prompts", str, "all", "all: every record of a prompt; first: only its "
                        "first record", rule=(lambda v: v in ("all", "first"), "all or first")),
             ])
def near_dup(records, options, dropped: Counter) -> list:
    seen_records, seen_prompts, kept = set(), set(), []
    for record in records:
        key = record_key(record)
        if key in seen_records:
            dropped["duplicate_record"] += 1
            continue
        seen_records.add(key)
        prompt = key[1]
        if options["prompts"] == "first" and prompt in seen_prompts:
            dropped["repeated_prompt"] += 1
            continue
        if isinstance(record, PairRecord) and jaccard(
                normalise(record.chosen), normalise(record.rejected),
                options["n"]) >= options["threshold"]:
            dropped["near_duplicate_pair"] += 1
            continue
        seen_prompts.add(prompt)
        kept.append(record)
    return kept
