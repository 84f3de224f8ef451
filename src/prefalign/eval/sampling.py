"""Seeded sampling of responses with Hugging Face ``generate``, one prompt at a time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from prefalign.data import tokenize_prompt


@dataclass
class Samples:
    """``prompt_ids[i]`` and its sampled ``responses[i]`` (token ids, cut after the first EOS,
    EOS kept) with their decoded ``texts[i]``."""

    prompt_ids: list[list[int]]
    responses: list[list[list[int]]]
    texts: list[list[str]]


def _cut(ids: list[int], eos_ids: set[int], pad_id: int | None) -> list[int]:
    out = []
    for t in ids:
        if t in eos_ids:
            out.append(t)
            break
        out.append(t)
    if pad_id is not None and pad_id not in eos_ids:
        while out and out[-1] == pad_id:
            out.pop()
    return out


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: Sequence, *, num_samples: int = 1,
                     max_new_tokens: int = 64, temperature: float = 1.0, top_p: float = 1.0,
                     seed: int = 0, system: str | None = None) -> Samples:
    """Sample ``num_samples`` responses per prompt (string or chat messages) from ``model``.

    The same seed, model and prompts give the same samples; the global RNG is left untouched.
    """
    device = next(model.parameters()).device
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos_ids))
    prompt_ids, responses, texts = [], [], []
    with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        torch.manual_seed(seed)
        for prompt in prompts:
            ids = tokenize_prompt(prompt, tokenizer, system)
            inp = torch.tensor([ids], device=device)
            out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp),
                                 do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
                                 max_new_tokens=max_new_tokens, num_return_sequences=num_samples,
                                 pad_token_id=pad, eos_token_id=sorted(eos_ids))
            resp = [_cut(row[len(ids):].tolist(), eos_ids, pad) for row in out]
            resp = [r if r else [next(iter(eos_ids))] for r in resp]
            prompt_ids.append(ids)
            responses.append(resp)
            texts.append([tokenizer.decode(r, skip_special_tokens=True) for r in resp])
    return Samples(prompt_ids, responses, texts)
