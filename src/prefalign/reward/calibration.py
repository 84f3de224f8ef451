"""Calibration of a pairwise preference model (a reward model's Bradley-Terry probability, a
judge's): how far its confidence is from its accuracy.

For a pair, p = σ(r_chosen − r_rejected) is the model's probability that the labelled chosen
response is better; it predicts the side with p > 1/2, with confidence max(p, 1 − p), and is
right when p > 1/2 (a tie, p = 1/2, counts half). ``bins`` equal-width bins of confidence over
[1/2, 1] give the reliability diagram (each bin's mean confidence against its accuracy) and the
expected calibration error ECE = Σ_b (n_b / N)·|accuracy_b − confidence_b| (Guo et al. 2017,
"On Calibration of Modern Neural Networks"). ``accuracy_by_margin`` splits the pairs into
quantile buckets of |r_chosen − r_rejected|: a well-behaved model is more accurate where its
margin is larger.
"""

from __future__ import annotations

import math
from typing import Sequence


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _correct(p: float) -> float:
    return 1.0 if p > 0.5 else (0.5 if p == 0.5 else 0.0)


def reliability(probs: Sequence[float], *, bins: int = 10) -> list[dict]:
    """Per confidence bin (non-empty ones): its range, count, mean confidence and accuracy."""
    rows: list[list[tuple[float, float]]] = [[] for _ in range(bins)]
    for p in probs:
        confidence = max(p, 1 - p)
        b = min(int((confidence - 0.5) / 0.5 * bins), bins - 1)
        rows[b].append((confidence, _correct(p)))
    out = []
    for b, members in enumerate(rows):
        if members:
            out.append({"low": 0.5 + 0.5 * b / bins, "high": 0.5 + 0.5 * (b + 1) / bins,
                        "n": len(members),
                        "confidence": sum(c for c, _ in members) / len(members),
                        "accuracy": sum(a for _, a in members) / len(members)})
    return out


def expected_calibration_error(probs: Sequence[float], *, bins: int = 10) -> float:
    n = len(probs)
    return sum(row["n"] / n * abs(row["accuracy"] - row["confidence"])
               for row in reliability(probs, bins=bins))


def accuracy_by_margin(margins: Sequence[float], *, buckets: int = 4) -> list[dict]:
    """Accuracy per quantile bucket of |margin| (margin = r_chosen − r_rejected)."""
    order = sorted(range(len(margins)), key=lambda i: abs(margins[i]))
    out = []
    for b in range(buckets):
        members = order[b * len(order) // buckets:(b + 1) * len(order) // buckets]
        if members:
            out.append({"bucket": b + 1, "n": len(members),
                        "abs_margin_low": abs(margins[members[0]]),
                        "abs_margin_high": abs(margins[members[-1]]),
                        "accuracy": sum(_correct(_sigmoid(margins[i])) for i in members)
                        / len(members)})
    return out


def calibration(margins: Sequence[float], *, bins: int = 10, buckets: int = 4) -> dict:
    """ECE, the reliability bins and the accuracy by margin bucket of pairwise margins."""
    probs = [_sigmoid(m) for m in margins]
    return {"ece": expected_calibration_error(probs, bins=bins),
            "reliability": reliability(probs, bins=bins),
            "accuracy_by_margin": accuracy_by_margin(margins, buckets=buckets)}
