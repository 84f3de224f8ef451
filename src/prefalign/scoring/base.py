"""The scorer interface and the weighted sum that combines scorers.

A scorer sees whole groups, one per prompt, because some (a pairwise judge) compare the responses
to one prompt: ``score(groups) -> scores`` with ``groups`` a list of ``(PromptItem, [response
text, ...])`` and one `Score` per response back. ``stats`` counts what happened (parse failures,
timeouts, ...) for the manifest; ``describe()`` says what the scorer is.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from prefalign.generation.types import PromptItem

@dataclass
class Score:
    """A scorer's verdict on one response. ``value`` None means it could not be scored (a judge's
    answer that did not parse, ...); ``reason`` says why a response failed or was not scored."""

    value: float | None
    reason: str | None = None


Group = tuple[PromptItem, list[str]]


class Scorer:
    name = "scorer"

    def __init__(self):
        self.stats: Counter = Counter()

    def score(self, groups: Sequence[Group]) -> list[list[Score]]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"scorer": self.name}


class WeightedSum(Scorer):
    """``sum_i w_i * s_i``; a response that any part could not score is not scored either (its
    reasons are joined); failure reasons of every part are kept."""

    name = "sum"

    def __init__(self, parts: list[tuple[float, Scorer]]):
        super().__init__()
        self.parts = parts

    def score(self, groups: Sequence[Group]) -> list[list[Score]]:
        per_part = [scorer.score(groups) for _, scorer in self.parts]
        out = []
        for g, (_, responses) in enumerate(groups):
            row = []
            for r in range(len(responses)):
                scores = [part[g][r] for part in per_part]
                reasons = [f"{s.name}: {sc.reason}" for (_, s), sc in zip(self.parts, scores)
                           if sc.reason]
                if any(sc.value is None for sc in scores):
                    value = None
                else:
                    value = sum(w * sc.value for (w, _), sc in zip(self.parts, scores))
                row.append(Score(value, "; ".join(reasons) or None))
            out.append(row)
        for _, scorer in self.parts:
            self.stats.update({f"{scorer.name}/{k}": v for k, v in scorer.stats.items()})
            scorer.stats.clear()
        return out

    def describe(self) -> dict:
        return {"scorer": "sum", "parts": [dict(weight=w, **s.describe()) for w, s in self.parts]}
