"""The scorer interface and the weighted sum that combines scorers.

A scorer sees whole groups, one per prompt, because some (a pairwise judge) compare the responses
to one prompt: ``score(groups) -> scores`` with ``groups`` a list of ``(PromptItem, [response
text, ...])`` and one `Score` per response back. ``stats`` counts what happened (parse failures,
timeouts, ...) for the manifest; ``describe()`` says what the scorer is.
"""

from __future__ import annotations

import math
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
    # several verdicts behind the value (a jury's members, a judge's principles), in the
    # scorer's order: pairs get each side's and their agreement (the preference strength)
    votes: tuple[float, ...] | None = None
    # a pairwise scorer's p(this response ≻ response j), j over the group's responses in order
    # (its own entry unused): a pair's strength is its chosen's ``beats`` at its rejected
    beats: tuple[float, ...] | None = None
    # what the scorer made for the response's whole prompt, for the log (a self-test scorer's
    # tests): the same dict in every Score of a group; strategies that need it read it there
    notes: dict | None = None

    def __post_init__(self):
        # NaN or +-inf is not a score: it cannot be ranked (NaN compares false with everything,
        # so a pair would be built of a response with itself); the response is left unscored
        try:
            finite = self.value is None or math.isfinite(float(self.value))
        except (TypeError, ValueError, OverflowError):
            finite = True  # not a number at all: left for its user to refuse
        if not finite:
            bad = self.value
            self.value = None
            self.reason = f"{NON_FINITE}: {bad!r}" + (f"; {self.reason}" if self.reason else "")


NON_FINITE = "non_finite"  # the reason of a response whose scorer returned NaN or +-inf


def is_finite_score(value) -> bool:
    """Whether ``value`` is a usable score: a finite number."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


Group = tuple[PromptItem, list[str]]


def per_group(flat: Sequence, groups: Sequence[Group]) -> list[list]:
    """``flat`` (one value per response, in order) split back into one list per group."""
    out, pos = [], 0
    for _, responses in groups:
        out.append(list(flat[pos:pos + len(responses)]))
        pos += len(responses)
    return out


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
    reasons are joined); failure reasons of every part are kept, so are the parts' notes and the
    votes of the one part that gives them (two parts' votes do not mix)."""

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
                notes = {k: v for sc in scores if sc.notes for k, v in sc.notes.items()}
                voters = [sc.votes for sc in scores if sc.votes is not None]
                row.append(Score(value, "; ".join(reasons) or None,
                                 votes=voters[0] if len(voters) == 1 else None,
                                 notes=notes or None))
            out.append(row)
        for _, scorer in self.parts:
            self.stats.update({f"{scorer.name}/{k}": v for k, v in scorer.stats.items()})
            scorer.stats.clear()
        return out

    def describe(self) -> dict:
        return {"scorer": "sum", "parts": [dict(weight=w, **s.describe()) for w, s in self.parts]}
