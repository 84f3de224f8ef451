"""Seeded, batched sampling of responses for evaluation, through any `prefalign.generation` back
end (hf by default, on the model already loaded; vllm; an OpenAI-compatible server)."""

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
                     top_k: int = 0,
                     seed: int = 0, system: str | None = None, batch_size: int = 16,
                     generator=None) -> Samples:
    """Sample ``num_samples`` responses per prompt (string or chat messages).

    ``generator``: a `prefalign.generation.Generator` to sample with; None samples from ``model``
    (a loaded causal LM) with the hf back end. Batched (``batch_size`` rows per ``generate``)
    with one seed per (prompt, sample), as synth samples: the same seed, model and prompts give
    the same samples, and another batch size changes a sample only through float rounding of
    left-padded rows; the global RNG is left untouched. ``temperature=0`` is greedy. A back end
    that returns text only (openai) has its responses tokenized with ``tokenizer`` (as training
    tokenizes a completion after its prompt), the end token appended.
    """
    from prefalign.data.records import SFTRecord
    from prefalign.data.tokenization import tokenize_record
    from prefalign.generation import make_generator
    from prefalign.generation.base import end_ids
    from prefalign.generation.types import PromptItem, SamplingConfig, response_value

    if generator is None:
        device = next(model.parameters()).device
        generator = make_generator("(in memory)", "hf", model_obj=model, tokenizer=tokenizer,
                                   device=str(device), batch_size=batch_size)
    items = [PromptItem(index=i, prompt=p, system=system, meta={}) for i, p in enumerate(prompts)]
    sampling = SamplingConfig(temperature=temperature, top_p=top_p, top_k=top_k,
                              max_new_tokens=max_new_tokens)
    completions = generator.generate(items, num_samples, sampling, seed)
    eos = getattr(generator, "eos_ids", None) or end_ids(None, tokenizer)
    pad = getattr(generator, "pad_id", None)
    stop = min(eos) if eos else (pad if pad is not None else 0)
    prompt_ids = [tokenize_prompt(p, tokenizer, system) for p in prompts]

    def ids(prompt, c) -> list[int]:
        if c.token_ids is not None:
            return list(c.token_ids)
        ex, _ = tokenize_record(SFTRecord(prompt, response_value(prompt, c.text), system=system),
                             tokenizer)
        return list(ex.responses[0])

    # an empty response is the stop token alone, so every response has a log-prob to compare
    responses = [[ids(p, c) or [stop] for c in row] for p, row in zip(prompts, completions)]
    texts = [[c.text for c in row] for row in completions]
    return Samples(prompt_ids, responses, texts)
