"""Fit a prompt and its responses into ``max_length`` tokens.

``max_length`` bounds prompt + each response separately (the engine runs every response as its
own continuation of the prompt), so it is the longest response that must fit. Policies:

- ``keep_start``: keep the start of every sequence: cut responses from the end; a prompt that
  alone leaves no room is cut from the end too, keeping at least one response token.
- ``truncate_prompt_left``: cut the prompt from the left first (a leading BOS is kept), down to
  one token, then cut responses from the end. Keeps the generation prompt intact.
- ``drop``: drop rows that do not fit.

``max_prompt_length`` (optional) also bounds the prompt: cut from the end (``keep_start``), from
the left (``truncate_prompt_left``), or drop the row (``drop``).
"""

from __future__ import annotations

from dataclasses import dataclass

POLICIES = ("keep_start", "truncate_prompt_left", "drop")


@dataclass
class Fit:
    prompt_ids: list[int]
    responses: list[list[int]]
    prompt_cut: bool = False
    responses_cut: bool = False
    dropped: str | None = None  # reason, when the row is dropped

    @property
    def truncated(self) -> bool:
        return self.prompt_cut or self.responses_cut


def check_limits(max_length: int | None, policy: str, max_prompt_length: int | None) -> None:
    if policy not in POLICIES:
        raise ValueError(f"unknown truncation policy {policy!r}; choose one of {POLICIES}")
    if max_length is not None and max_length < 2:
        raise ValueError(f"max_length must be at least 2 (one prompt and one response token), "
                         f"got {max_length}")
    if max_prompt_length is not None and max_prompt_length < 1:
        raise ValueError(f"max_prompt_length must be at least 1, got {max_prompt_length}")
    if None not in (max_length, max_prompt_length) and max_prompt_length >= max_length:
        raise ValueError(f"max_prompt_length ({max_prompt_length}) must be below max_length "
                         f"({max_length}) to leave room for the response")


def fit(prompt_ids: list[int], responses: list[list[int]], *, max_length: int | None,
        policy: str = "keep_start", max_prompt_length: int | None = None,
        bos_token_id: int | None = None) -> Fit:
    """Apply ``policy``; the result says what was cut, or why the row was dropped."""
    longest = max(len(r) for r in responses)
    prompt_over = max_prompt_length is not None and len(prompt_ids) > max_prompt_length
    total_over = max_length is not None and len(prompt_ids) + longest > max_length
    if not (prompt_over or total_over):
        return Fit(prompt_ids, responses)
    if policy == "drop":
        return Fit(prompt_ids, responses, dropped="prompt_too_long" if prompt_over else "too_long")

    budget = len(prompt_ids)
    if max_prompt_length is not None:
        budget = min(budget, max_prompt_length)
    if policy == "keep_start":
        if max_length is not None:
            budget = min(budget, max_length - 1)
        prompt = prompt_ids[:budget]
    else:
        if max_length is not None:
            budget = min(budget, max(max_length - longest, 1))
        prompt = _keep_right(prompt_ids, budget, bos_token_id)

    room = None if max_length is None else max_length - len(prompt)
    cut = [r[:room] if room is not None else r for r in responses]
    return Fit(prompt, cut, prompt_cut=len(prompt) < len(prompt_ids),
               responses_cut=any(len(a) < len(b) for a, b in zip(cut, responses)))


def _keep_right(ids: list[int], budget: int, bos_token_id: int | None) -> list[int]:
    if budget >= len(ids):
        return ids
    if bos_token_id is not None and ids[0] == bos_token_id and budget >= 2:
        return [ids[0], *ids[len(ids) - budget + 1:]]
    return ids[len(ids) - budget:]
