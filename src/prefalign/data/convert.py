"""Convert between data kinds: ranked lists to pairs, pairs to unpaired rows or demonstrations.

Ranked -> pairs keeps the score gap as ``margin`` and the two scores as ``score_chosen`` /
``score_rejected``. Ties (equal scores), gaps below ``min_gap`` and identical texts make no pair;
each is counted in the returned `ConvertReport`, never dropped silently. Sampled token ids
(`prefalign.data.sampled`) follow the responses they belong to.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .pairing import pair_indices
from .records import PairRecord, RankedRecord, SFTRecord, UnpairedRecord
from .sampled import select
from .validate import whitespace_key

log = logging.getLogger("prefalign.data")

STRATEGIES = ("best_vs_worst", "best_vs_each", "all_pairs")


@dataclass
class ConvertReport:
    records: int = 0
    produced: int = 0
    dropped: Counter = field(default_factory=Counter)  # candidate pairs not made, per reason

    def summary(self) -> str:
        text = f"converted {self.records} records into {self.produced}"
        if self.dropped:
            reasons = ", ".join(f"{r}: {n}" for r, n in self.dropped.most_common())
            text += f"; candidate pairs not made: {sum(self.dropped.values())} ({reasons})"
        return text


def ranked_to_pairs(records: Iterable[RankedRecord], strategy: str = "best_vs_worst", *,
                    min_gap: float = 0.0) -> tuple[list[PairRecord], ConvertReport]:
    """Build pairs from scored lists (higher score is better).

    - ``best_vs_worst``: one pair per prompt, the top score against the bottom (West-of-N).
    - ``best_vs_each``: the top against every other completion (K - 1 pairs).
    - ``all_pairs``: every two completions whose scores differ by at least ``min_gap``.

    The first of equally scored completions counts as the best (or worst). A candidate pair is not
    made, and counted, when its scores tie (``tie``), its gap is below ``min_gap``
    (``below_min_gap``), its two texts are identical (``identical_responses``) or differ only
    in whitespace (``whitespace_only_difference``).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    if min_gap < 0:
        raise ValueError(f"min_gap must be >= 0, got {min_gap}")
    report = ConvertReport()
    pairs: list[PairRecord] = []
    for record in records:
        report.records += 1
        for i, j in pair_indices(record.scores, strategy):  # shared with synth's pairs
            si, sj = record.scores[i], record.scores[j]
            if si < sj:
                i, j, si, sj = j, i, sj, si
            gap = si - sj
            a, b = record.completions[i], record.completions[j]
            reason = ("tie" if gap == 0 else "below_min_gap" if gap < min_gap
                      else "identical_responses" if a == b
                      else "whitespace_only_difference" if whitespace_key(a) == whitespace_key(b)
                      else None)
            if reason:
                report.dropped[reason] += 1
                continue
            pairs.append(PairRecord(
                prompt=copy.deepcopy(record.prompt), chosen=copy.deepcopy(record.completions[i]),
                rejected=copy.deepcopy(record.completions[j]), margin=gap, score_chosen=si,
                score_rejected=sj, system=record.system, meta=select(record.meta, [i, j])))
    report.produced = len(pairs)
    if report.dropped:
        log.warning("%s", report.summary())
    return pairs, report


def pairs_to_unpaired(records: Iterable[PairRecord]) -> list[UnpairedRecord]:
    """Two unpaired rows per pair: chosen with label True, then rejected with label False."""
    out = []
    for r in records:
        for k, (completion, label) in enumerate(((r.chosen, True), (r.rejected, False))):
            out.append(UnpairedRecord(copy.deepcopy(r.prompt), copy.deepcopy(completion), label,
                                      system=r.system, meta=select(r.meta, [k])))
    return out


def pairs_to_sft(records: Iterable[PairRecord]) -> list[SFTRecord]:
    """One demonstration per pair: the prompt and its chosen response."""
    return [SFTRecord(copy.deepcopy(r.prompt), copy.deepcopy(r.chosen), system=r.system,
                      meta=select(r.meta, [0])) for r in records]
