"""``jury``: several scorers vote (juries of judges or reward models; "Secrets of RLHF II"'s
preference strength from several reward models' votes, SALMON's principle-following judges).

``jury:SPEC|SPEC|...`` builds each member from its own scorer spec (any kind, no weights). Each
member scores every response; the members' scales may differ (a judge's 1-10, a reward model's
logit), so a response's jury score is rank-based: the mean over members of the share of the
prompt's other responses it beats under that member (a tie counts half; a prompt's only response
gets 0.5). Every response keeps each member's score as its votes, so each pair gets
``chosen_votes``, ``rejected_votes`` and ``strength``, the share of members that prefer the
chosen response (ties half); ``--filter strength:MIN`` drops the pairs the jury disagrees on. A
response that any member could not score is not scored (the reasons are kept).
"""

from __future__ import annotations

from typing import Sequence

from .base import Group, Score, Scorer
from .registry import scorer_kind


def beats(values: Sequence[float], i: int) -> float:
    """The share of the other values that ``values[i]`` beats (ties half; 0.5 alone)."""
    others = [v for j, v in enumerate(values) if j != i]
    if not others:
        return 0.5
    return sum(1.0 if values[i] > v else 0.5 if values[i] == v else 0.0 for v in others) / len(others)


class Jury(Scorer):
    name = "jury"

    def __init__(self, members: list[Scorer]):
        super().__init__()
        if len(members) < 2:
            raise ValueError("scorer jury: give two or more members, jury:SPEC|SPEC|...")
        self.members = members

    def score(self, groups: Sequence[Group]) -> list[list[Score]]:
        per_member = [m.score(groups) for m in self.members]
        out = []
        for g, (_, responses) in enumerate(groups):
            verdicts = [[member[g][r] for member in per_member] for r in range(len(responses))]
            scored = [r for r, v in enumerate(verdicts) if all(s.value is not None for s in v)]
            row = []
            for r, votes in enumerate(verdicts):
                reasons = "; ".join(f"{m.name}: {s.reason}" for m, s in zip(self.members, votes)
                                    if s.reason) or None
                if r not in scored:
                    row.append(Score(None, reasons or "a juror could not score it"))
                    continue
                values = [[verdicts[x][m].value for x in scored]
                          for m in range(len(self.members))]
                position = scored.index(r)
                rank = sum(beats(v, position) for v in values) / len(values)
                row.append(Score(rank, reasons, tuple(s.value for s in votes)))
            out.append(row)
        for m in self.members:
            self.stats.update({f"{m.name}/{k}": v for k, v in m.stats.items()})
            m.stats.clear()
        return out

    def describe(self) -> dict:
        return {"scorer": self.name, "members": [m.describe() for m in self.members]}


@scorer_kind("jury", args="`SPEC|SPEC|...` (scorer specs)",
             summary="members vote; score = mean over members of the share of the prompt's other "
                     "responses beaten; pairs get each member's votes and their agreement "
                     "(`strength`)", nested=True)
def _build(args: str, options: dict, device: str | None) -> Scorer:
    from . import build_term, parse_scorer_spec

    members = []
    for spec in (p.strip() for p in args.split("|")):
        terms = parse_scorer_spec(spec)
        if len(terms) != 1 or terms[0][0] != 1.0:
            raise ValueError(f"scorer jury: a member is one scorer without a weight, got {spec!r}")
        _, kind, member_args, member_options = terms[0]
        members.append(build_term(kind, member_args, member_options, device))
    return Jury(members)
