"""The values a generation back end takes and returns: prompts, sampling settings, completions
(used by synth, eval, scorers and iterate alike)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from prefalign.data.records import Text, is_conversational


@dataclass
class PromptItem:
    """One prompt to sample from. ``index`` is its 0-based position in the prompt source and keys
    every seed and every resume decision; ``meta`` holds the row's other columns (an ``answer``
    or ``tests`` column for verifiers, ids, ...)."""

    index: int
    prompt: Text
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def example(self) -> dict[str, Any]:
        """The row as a verifier sees it: ``prompt``, ``system`` and every other column."""
        row = dict(self.meta)
        row["prompt"] = self.prompt
        if self.system is not None:
            row["system"] = self.system
        return row

    def messages(self) -> list[dict[str, Any]]:
        """The prompt as chat messages (a plain string becomes one user turn)."""
        msgs = list(self.prompt) if is_conversational(self.prompt) else [
            {"role": "user", "content": self.prompt}]
        if self.system is not None:
            msgs = [{"role": "system", "content": self.system}] + msgs
        return msgs

    def text(self) -> str:
        """The last user turn (or the plain prompt): what a judge is shown as the question."""
        if is_conversational(self.prompt):
            return "\n\n".join(f"{m['role']}: {m['content']}" for m in self.prompt)
        return self.prompt


@dataclass
class SamplingConfig:
    """How to sample. ``temperature`` 0 means greedy; ``top_k`` 0 and ``top_p`` 1 mean off."""

    temperature: float = 0.8
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256

    def __post_init__(self):
        check_sampling(self.temperature, self.top_p, self.top_k, self.max_new_tokens)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SAMPLING_FLAGS = {"temperature": "--temperature", "top_p": "--top-p", "top_k": "--top-k",
                  "max_new_tokens": "--max-new-tokens"}


def check_sampling(temperature: float = 0.8, top_p: float = 1.0, top_k: int = 0,
                   max_new_tokens: int = 256, flags: dict[str, str] | None = None) -> None:
    """Refuse sampling settings no back end can use, naming the flag and its range (one line,
    before any model is loaded): temperature >= 0, top_p in (0, 1], top_k >= 0,
    max_new_tokens >= 1. ``flags`` renames the flags (e.g. iterate's --eval-temperature)."""
    names = SAMPLING_FLAGS | (flags or {})

    def bad(field, value, rule):
        raise ValueError(f"{names[field]} {value!r}: must be {rule}")

    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x

    if not number(temperature) or not temperature >= 0 or temperature == float("inf"):
        bad("temperature", temperature, ">= 0 and finite (0 = greedy)")
    if not number(top_p) or not 0 < top_p <= 1:
        bad("top_p", top_p, "in (0, 1] (1 = off)")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        bad("top_k", top_k, "an integer >= 0 (0 = off)")
    if (not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool)
            or max_new_tokens < 1):
        bad("max_new_tokens", max_new_tokens, "an integer >= 1")


@dataclass
class Completion:
    """One sampled response. ``finish_reason`` is "stop" (end of turn) or "length" (cut at
    max_new_tokens); ``seed`` is the seed it was sampled with."""

    text: str
    seed: int
    finish_reason: str = "stop"
    num_tokens: int | None = None
    # the generated ids, the stop token included (back ends that see ids fill it)
    token_ids: list[int] | None = field(default=None, repr=False)
    model: str | None = None  # the pool member that sampled it (`generation.pool`)

    def response_ids(self) -> list[int] | None:
        """The sampled ids without the id that ended the response (the first ``num_tokens``):
        tokenization adds the end as it does for text (see `prefalign.data.sampled`)."""
        if self.token_ids is None:
            return None
        ids = list(self.token_ids)
        return ids[:self.num_tokens] if self.num_tokens is not None else ids

    def to_dict(self) -> dict[str, Any]:
        """What the job logs: the fields, with ``response_ids`` in place of ``token_ids``."""
        d = asdict(self)
        d.pop("token_ids")
        if d["model"] is None:  # one generator: logged as before pools existed
            d.pop("model")
        if self.token_ids is not None:
            d["response_ids"] = self.response_ids()
        return d


def sample_seed(base_seed: int, prompt_index: int, sample_index: int) -> int:
    """The seed of sample ``sample_index`` of prompt ``prompt_index``: a hash of the three, so it
    does not depend on batching, chunking or where a resumed run starts (63-bit)."""
    digest = hashlib.sha256(f"{base_seed}:{prompt_index}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def response_value(prompt: Text, text: str) -> Text:
    """A generated text as a response record field: a chat prompt gets an assistant message."""
    return [{"role": "assistant", "content": text}] if is_conversational(prompt) else text
