"""Ready-made verifiers for ``verifier:prefalign.synth.checks:NAME`` (and examples to copy).

A verifier is ``fn(response, example) -> bool | float | (value, reason)``; ``example`` is the
prompt row, here with an ``answer`` column.
"""

from __future__ import annotations

import re

_INT = re.compile(r"-?\d+")


def _last_int(text: str) -> int | None:
    found = _INT.findall(text)
    return int(found[-1]) if found else None


def exact_answer(response: str, example: dict):
    """1 if the last integer in the response equals ``example['answer']``, else 0 with a reason."""
    got = _last_int(response)
    want = int(example["answer"])
    if got is None:
        return False, "no number in the response"
    return (True, None) if got == want else (False, f"answered {got}, expected {want}")


def answer_closeness(response: str, example: dict) -> tuple[float, str | None]:
    """Partial credit: ``1 / (1 + |last integer - answer|)``; 0 without a number."""
    got = _last_int(response)
    if got is None:
        return 0.0, "no number in the response"
    return 1.0 / (1.0 + abs(got - int(example["answer"]))), None
