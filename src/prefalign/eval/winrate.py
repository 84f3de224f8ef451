"""Win rate of a policy against a reference from per-prompt comparisons.

Any scorer works: a pairwise judge ``compare(prompt, policy_response, reference_response)``
returning +1 (policy wins), 0 (tie) or −1 (reference wins), or pointwise scores of both
responses (a reward model, a verifier). Ties count as half a win in ``win_rate`` and are also
reported on their own (``tie_rate``, and ``win_rate_excluding_ties`` over decided prompts).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

OUTCOMES = (1, 0, -1)


def win_rate(outcomes: Sequence[int]) -> dict[str, float]:
    """Summarise outcomes (+1 win, 0 tie, −1 loss for the policy)."""
    outcomes = list(outcomes)
    bad = [(i, o) for i, o in enumerate(outcomes) if o not in OUTCOMES]
    if bad:
        i, o = bad[0]
        raise ValueError(f"outcome {i} is {o!r}; outcomes must be +1 (win), 0 (tie) or -1 (loss)")
    n = len(outcomes)
    if n == 0:
        raise ValueError("no outcomes to summarise")
    wins, ties = outcomes.count(1), outcomes.count(0)
    losses = n - wins - ties
    decided = wins + losses
    return {"win_rate": (wins + 0.5 * ties) / n, "tie_rate": ties / n,
            "win_rate_excluding_ties": wins / decided if decided else 0.5,
            "wins": wins, "ties": ties, "losses": losses, "n": n}


def outcomes_from_scores(policy_scores: Sequence[float], reference_scores: Sequence[float], *,
                         tie_tolerance: float = 0.0, nan: str = "raise") -> list[int]:
    """+1/0/−1 per prompt from pointwise scores; |difference| ≤ ``tie_tolerance`` is a tie.

    A NaN score (a scorer that failed) is an error naming the prompt and the side
    (``nan="raise"``, the default); ``nan="lose"`` counts the response without a score as the
    loser of its comparison, on either side (both NaN: a tie). It is never read as a number:
    NaN compares false both ways, which would make it a loss for the policy whichever side
    it is on.
    """
    if nan not in ("raise", "lose"):
        raise ValueError(f"nan must be 'raise' or 'lose', got {nan!r}")
    if len(policy_scores) != len(reference_scores):
        raise ValueError(f"{len(policy_scores)} policy scores but {len(reference_scores)} "
                         "reference scores; give one of each per prompt")
    out = []
    for i, (p, r) in enumerate(zip(policy_scores, reference_scores)):
        p, r = float(p), float(r)
        missing = [side for side, v in (("policy", p), ("reference", r)) if math.isnan(v)]
        if missing:
            if nan == "raise":
                raise ValueError(f"prompt {i}: the {' and '.join(missing)} score is NaN; a "
                                 "comparison needs two numbers (fix the scorer, or pass "
                                 "nan='lose' to count an unscored response as the loser)")
            out.append(0 if len(missing) == 2 else (-1 if missing == ["policy"] else 1))
            continue
        d = p - r  # NaN only for two equal infinities: a tie
        out.append(0 if math.isnan(d) or abs(d) <= tie_tolerance else (1 if d > 0 else -1))
    return out


def compare_all(compare: Callable[[object, str, str], int], prompts: Sequence,
                policy_responses: Sequence[str], reference_responses: Sequence[str]) -> list[int]:
    """Call ``compare`` once per prompt; checks every answer is +1, 0 or −1."""
    if not len(prompts) == len(policy_responses) == len(reference_responses):
        raise ValueError("prompts, policy_responses and reference_responses differ in length: "
                         f"{len(prompts)}, {len(policy_responses)}, {len(reference_responses)}")
    out = []
    for i, (p, a, b) in enumerate(zip(prompts, policy_responses, reference_responses)):
        o = compare(p, a, b)
        if o not in OUTCOMES:
            raise ValueError(f"compare returned {o!r} for prompt {i}; it must return +1 (policy "
                             "wins), 0 (tie) or -1 (reference wins)")
        out.append(int(o))
    return out
