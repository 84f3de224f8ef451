"""Sampling with Hugging Face ``generate``: batched, left-padded, CPU or GPU.

Reproducibility: each (prompt, sample) row of a batch draws its tokens from its own
``torch.Generator`` seeded with ``sample_seed(seed, prompt index, sample index)``. A logits
processor applies temperature, top-k and top-p, samples each row's next token with that row's
generator and hands ``generate`` a one-hot distribution that greedy decoding follows. So a sample
does not depend on which other rows share its batch, on the chunking, or on where a resumed run
starts. (Rows in a batch are left-padded together; the job keeps batches identical on resume, so
even padding-level float differences cannot change a sample.)

A response's text is decoded in the context of its prompt (`decode_continuation`, special tokens
skipped), so prompt text + response text reads as the sampled tokens do, leading space included;
its ids (``Completion.token_ids``) are kept for training to use as sampled.
"""

from __future__ import annotations

from typing import Sequence

import torch

from prefalign.data.sampled import decode_continuation
from prefalign.data.tokenization import tokenize_prompt

from .types import Completion, PromptItem, SamplingConfig
from .base import end_ids, regroup, requests
from .registry import generation_backend


class _RowSampler:
    """A logits processor that samples every row with its own generator."""

    def __init__(self, seeds: list[int], sampling: SamplingConfig, device):
        self.sampling = sampling
        self.generators = []
        for s in seeds:
            g = torch.Generator(device=device)
            g.manual_seed(s)
            self.generators.append(g)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        sp = self.sampling
        logits = scores.float() / sp.temperature
        if sp.top_k and sp.top_k < logits.shape[-1]:
            kth = torch.topk(logits, sp.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if sp.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
            probs = torch.softmax(sorted_logits, dim=-1)
            # drop a token when the tokens before it already cover top_p (the first always stays)
            drop = (torch.cumsum(probs, dim=-1) - probs) >= sp.top_p
            sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
        probs = torch.softmax(logits, dim=-1)
        out = torch.full_like(scores, float("-inf"))
        for row, gen in enumerate(self.generators):
            token = torch.multinomial(probs[row], 1, generator=gen)
            out[row, token] = 0.0
        return out


class HFGenerator:
    """Generate with a local Hugging Face causal LM (a folder or hub id already in the cache)."""

    name = "hf"

    def __init__(self, model: str, *, device: str | None = None, dtype: str = "auto",
                 batch_size: int = 16, trust_remote_code: bool = False, model_obj=None,
                 tokenizer=None):
        from transformers import AutoTokenizer

        from prefalign.engine.loading import load_causal_lm

        self.model_path = str(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(
            model, trust_remote_code=trust_remote_code)
        if model_obj is None:
            torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16,
                           "float16": torch.float16}[dtype]
            model_obj = load_causal_lm(model, dtype=torch_dtype,
                                       trust_remote_code=trust_remote_code)
        self.model = model_obj.to(self.device).eval()
        tok = self.tokenizer
        self.eos_ids = end_ids(self.model.generation_config.eos_token_id, tok)
        pad = tok.pad_token_id
        self.pad_id = pad if pad is not None else (min(self.eos_ids) if self.eos_ids else 0)

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model_path, "device": self.device,
                "batch_size": self.batch_size}

    def generate(self, prompts: Sequence[PromptItem], n: int, sampling: SamplingConfig,
                 seed: int = 0) -> list[list[Completion]]:
        reqs = requests(prompts, n, seed)
        ids = [tokenize_prompt(p.prompt, self.tokenizer, p.system) for p in prompts]
        flat: list[Completion] = []
        for start in range(0, len(reqs), self.batch_size):
            batch = reqs[start:start + self.batch_size]
            flat.extend(self._batch([ids[i] for i, _, _ in batch], [s for _, _, s in batch],
                                    sampling))
        return regroup(prompts, n, flat)

    @torch.no_grad()
    def _batch(self, prompt_ids: list[list[int]], seeds: list[int],
               sampling: SamplingConfig) -> list[Completion]:
        from transformers import LogitsProcessorList

        width = max(len(p) for p in prompt_ids)
        input_ids = torch.full((len(prompt_ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for row, p in enumerate(prompt_ids):
            input_ids[row, width - len(p):] = torch.tensor(p)
            mask[row, width - len(p):] = 1
        kwargs = dict(max_new_tokens=sampling.max_new_tokens, do_sample=False, num_beams=1,
                      pad_token_id=self.pad_id, eos_token_id=sorted(self.eos_ids) or None,
                      temperature=None, top_p=None, top_k=None)
        if sampling.temperature > 0:
            kwargs["logits_processor"] = LogitsProcessorList(
                [_RowSampler(seeds, sampling, self.device)])
        out = self.model.generate(input_ids=input_ids.to(self.device),
                                  attention_mask=mask.to(self.device), **kwargs)
        completions = []
        for row, seq in enumerate(out[:, width:].tolist()):
            finish, kept, ids = "length", seq, seq
            for pos, tok in enumerate(seq):
                if tok in self.eos_ids:
                    finish, kept, ids = "stop", seq[:pos], seq[:pos + 1]
                    break
            # decoded after the prompt, as servers' incremental detokenizers do: a SentencePiece
            # or word-level response decoded alone loses its leading space
            text = decode_continuation(self.tokenizer, prompt_ids[row], kept)
            completions.append(Completion(text=text, seed=seeds[row], finish_reason=finish,
                                          num_tokens=len(kept), token_ids=ids))
        return completions


@generation_backend("hf", summary="Hugging Face generate on a local model folder (default)",
                    options=("device", "dtype", "batch_size", "trust_remote_code", "model_obj",
                             "tokenizer"),
                    shares_loaded_model=True)
def _build(model, base_url, options):
    return HFGenerator(model, **options)
