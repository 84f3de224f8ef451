"""Behaviour drift: how often responses show a behaviour (refusals, say), given as patterns,
before and after training.

A patterns file holds one regular expression per line (Python ``re``, matched case-insensitively
anywhere in a response; blank lines and ``#`` lines are skipped). A response shows the
behaviour when any pattern matches. ``drift/policy`` is the share of the policy's samples that
do, ``drift/baseline`` the share of the baseline's (``--baseline``, else the reference model's
samples), ``drift/change`` their difference; ``drift`` in eval.json breaks it down per pattern.
"""

from __future__ import annotations

import re
from typing import Sequence


def read_patterns(path: str) -> list[re.Pattern]:
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as e:
        raise ValueError(f"--patterns {path}: cannot read it ({e.strerror or e})") from None
    patterns = []
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            patterns.append(re.compile(text, re.IGNORECASE))
        except re.error as e:
            raise ValueError(f"{path}, line {n}: not a regular expression ({e})") from None
    if not patterns:
        raise ValueError(f"--patterns {path}: no pattern in it (one per line)")
    return patterns


def share(patterns: Sequence[re.Pattern], texts: Sequence[str]) -> float:
    """The share of ``texts`` that any pattern matches."""
    return sum(any(p.search(t) for p in patterns) for t in texts) / len(texts)


def drift(patterns: Sequence[re.Pattern], policy: Sequence[str],
          baseline: Sequence[str] | None) -> tuple[dict[str, float], list[dict]]:
    metrics = {"drift/policy": share(patterns, policy)}
    rows = [{"pattern": p.pattern, "policy": share([p], policy)} for p in patterns]
    if baseline:
        metrics["drift/baseline"] = share(patterns, baseline)
        metrics["drift/change"] = metrics["drift/policy"] - metrics["drift/baseline"]
        for row, p in zip(rows, patterns):
            row["baseline"] = share([p], baseline)
    return metrics, rows
