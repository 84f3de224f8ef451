"""The one interface every generation back end implements."""

from __future__ import annotations

from typing import Protocol, Sequence

from .types import Completion, PromptItem, SamplingConfig, sample_seed


class Generator(Protocol):
    """Samples ``n`` completions for each prompt.

    ``generate(prompts, n, sampling, seed)`` returns one list of ``n`` `Completion`s per prompt,
    in order. Sample ``j`` of prompt ``p`` uses ``sample_seed(seed, p.index, j)``, so the same
    prompt index, sample index and base seed give the same completion however the prompts are
    batched or chunked (exactly so for the Hugging Face back end; vLLM and servers honour the
    per-request seed as far as their kernels are deterministic).
    """

    name: str

    def generate(self, prompts: Sequence[PromptItem], n: int, sampling: SamplingConfig,
                 seed: int = 0) -> list[list[Completion]]: ...

    def describe(self) -> dict: ...


def requests(prompts: Sequence[PromptItem], n: int, seed: int):
    """(prompt position, sample index, seed) for every sample, prompt-major."""
    return [(i, j, sample_seed(seed, p.index, j)) for i, p in enumerate(prompts) for j in range(n)]


def regroup(prompts: Sequence[PromptItem], n: int, flat: list[Completion]) -> list[list[Completion]]:
    return [flat[i * n:(i + 1) * n] for i in range(len(prompts))]


def end_ids(generation_eos, tokenizer) -> set[int]:
    """The ids that end a response: the generation config's ``eos_token_id`` (an id or a list,
    e.g. Llama 3's end-of-text and end-of-turn), else the tokenizer's EOS."""
    eos = generation_eos if generation_eos is not None else tokenizer.eos_token_id
    return set(eos if isinstance(eos, list) else [eos]) - {None}
