"""``near-dup``: pairs whose chosen and rejected are near duplicates, repeated records, and
(optionally) prompts repeated across the data set.

Texts are normalised first (Unicode NFKC, case folded, every run of characters that are not
letters or digits one space); a response given as messages is its contents joined. The
similarity of two responses is the Jaccard index |A ∩ B| / |A ∪ B| of their character n-gram
sets (a text shorter than n is one gram). A pair at or above ``threshold`` teaches nothing
but noise (``near_duplicate_pair``); a record equal to an earlier one after normalisation (the
same prompt and responses, in order) is a ``duplicate_record``; with ``prompts=first`` only the
first record of each prompt is kept (``repeated_prompt``).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from prefalign.data.records import PairRecord

from . import Option, pair_filter

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text) -> str:
    if isinstance(text, list):  # messages
        text = " ".join(str(m.get("content", "")) for m in text if isinstance(m, dict))
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    return _NOT_WORD.sub(" ", text).strip()


def ngrams(text: str, n: int) -> set[str]:
    if len(text) <= n:
        return {text}
    return {text[i:i + n] for i in range(len(text) - n + 1)}


def jaccard(a: str, b: str, n: int) -> float:
    """The Jaccard index of the character n-gram sets of two normalised texts."""
    x, y = ngrams(a, n), ngrams(b, n)
    return len(x & y) / len(x | y) if x | y else 1.0


def _key(record) -> tuple:
    return (record.kind, normalise(record.prompt), tuple(normalise(r) for r in record.responses),
            getattr(record, "label", None))


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
        key = _key(record)
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
