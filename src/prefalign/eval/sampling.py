"""Seeded, batched sampling of responses for evaluation (the synth HF back end underneath)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from prefalign.data import tokenize_prompt


@dataclass
class Samples:
    """``prompt_ids[i]`` and its sampled ``responses[i]`` (token ids, cut after the first EOS,
    EOS kept) with their decoded ``texts[i]``."""

    prompt_ids: list[list[int]]
    responses: list[list[list[int]]]
    texts: list[list[str]]


def sample_responses(model, tokenizer, prompts: Sequence, *, num_samples: int = 1,
                     max_new_tokens: int = 64, temperature: float = 1.0, top_p: float = 1.0,
                     seed: int = 0, system: str | None = None, batch_size: int = 16) -> Samples:
    """Sample ``num_samples`` responses per prompt (string or chat messages) from ``model``.

    Batched (``batch_size`` rows per ``generate``) with one seed per (prompt, sample), as synth
    samples: the same seed, model and prompts give the same samples, and another batch size
    changes a sample only through float rounding of left-padded rows; the global RNG is left
    untouched. ``temperature=0`` is greedy.
    """
    from prefalign.synth.backends.hf import HFGenerator
    from prefalign.synth.types import PromptItem, SamplingConfig

    device = next(model.parameters()).device
    gen = HFGenerator("(in memory)", model_obj=model, tokenizer=tokenizer, device=str(device),
                      batch_size=batch_size)
    items = [PromptItem(index=i, prompt=p, system=system, meta={}) for i, p in enumerate(prompts)]
    sampling = SamplingConfig(temperature=temperature, top_p=top_p, top_k=0,
                              max_new_tokens=max_new_tokens)
    completions = gen.generate(items, num_samples, sampling, seed)
    stop = min(gen.eos_ids) if gen.eos_ids else gen.pad_id
    prompt_ids = [tokenize_prompt(p, tokenizer, system) for p in prompts]
    # an empty response is the stop token alone, so every response has a log-prob to compare
    responses = [[list(c.token_ids) or [stop] for c in row] for row in completions]
    texts = [[c.text for c in row] for row in completions]
    return Samples(prompt_ids, responses, texts)
