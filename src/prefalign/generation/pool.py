"""A pool of generators: each prompt's samples drawn from several models (UltraFeedback's
candidate pools; multilingual arbitrage; strong-vs-weak negatives).

``--pool [NAME=][COUNT*]SPEC`` (repeatable): COUNT samples per prompt (default 1) from the
generator SPEC (a model folder, ``hf:PATH``, ``vllm:PATH`` or ``openai:URL#MODEL``), named NAME
(default: SPEC). Member m's samples are the prompt's samples ``offset_m .. offset_m + COUNT - 1``,
in the order the members are given; member m samples with base seed
``sample_seed(seed, -1, m)`` (so two members never share a seed stream) and its sample j with that
base and j, as every back end does. Each completion carries its member's name (``model``).
Members with different tokenizers cannot share token ids, so a pool keeps none: training
tokenizes the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .types import Completion, PromptItem, SamplingConfig, sample_seed

_MEMBER = re.compile(r"^(?:(?P<name>[A-Za-z0-9_.-]+)=)?(?:(?P<count>\d+)\*)?(?P<spec>.+)$")


@dataclass(frozen=True)
class PoolMember:
    name: str
    count: int
    spec: str


def parse_member(text: str) -> PoolMember:
    match = _MEMBER.match(str(text).strip())
    if not match or not match.group("spec").strip():
        raise ValueError(f"--pool {text!r}: write [NAME=][COUNT*]SPEC, e.g. big=4*hf:/models/a")
    count = int(match.group("count") or 1)
    if count < 1:
        raise ValueError(f"--pool {text!r}: COUNT must be >= 1")
    spec = match.group("spec").strip()
    return PoolMember(match.group("name") or spec, count, spec)


def parse_pool(texts: Sequence[str]) -> list[PoolMember]:
    members = [parse_member(t) for t in texts]
    names = [m.name for m in members]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"--pool: the name {twice[0]!r} is given twice; name the members "
                         "(NAME=COUNT*SPEC)")
    return members


def pool_size(texts: Sequence[str], n: int, n_given: bool) -> int:
    """The samples per prompt of a pool (the sum of its counts); an ``--n`` given that is not
    that sum is refused."""
    total = sum(m.count for m in parse_pool(texts))
    if n_given and n != total:
        raise ValueError(f"--n {n}: the pool samples {total} responses per prompt (the sum of "
                         "its counts); leave --n out or make them agree")
    return total


class GeneratorPool:
    """The `Generator` interface over several generators (see the module docstring)."""

    name = "pool"
    tokenizer = None  # no shared token ids

    def __init__(self, members: list[PoolMember], generators: list):
        self.members, self.generators = members, generators

    @property
    def size(self) -> int:
        return sum(m.count for m in self.members)

    def generate(self, prompts: Sequence[PromptItem], n: int, sampling: SamplingConfig,
                 seed: int = 0) -> list[list[Completion]]:
        if n != self.size:
            raise ValueError(f"the pool samples {self.size} responses per prompt, asked for {n}")
        rows: list[list[Completion]] = [[] for _ in prompts]
        for m, (member, generator) in enumerate(zip(self.members, self.generators)):
            out = generator.generate(prompts, member.count, sampling,
                                     sample_seed(seed, -1, m))
            for row, completions in zip(rows, out):
                for c in completions:
                    c.model = member.name
                    c.token_ids = None
                    row.append(c)
        return rows

    def describe(self) -> dict:
        return {"backend": self.name,
                "members": [{"name": m.name, "count": m.count, **g.describe()}
                            for m, g in zip(self.members, self.generators)]}


def make_pool(texts: Sequence[str], **options) -> GeneratorPool:
    """A pool from ``--pool`` texts; ``options`` go to every member's `make_generator`."""
    from . import make_generator

    members = parse_pool(texts)
    return GeneratorPool(members, [make_generator(m.spec, **options) for m in members])
