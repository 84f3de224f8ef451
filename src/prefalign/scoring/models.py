"""Loading scoring models and computing response log-probs with the engine's fast path."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Sequence

import torch

from prefalign.data.records import SFTRecord
from prefalign.data.tokenization import tokenize_record

from prefalign.generation.types import PromptItem, response_value


def default_device(device: str | None = None) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


class LogProbModel:
    """A causal LM that scores ``log p(response | prompt)`` (summed over response tokens)."""

    def __init__(self, path: str, *, device: str | None = None, trust_remote_code: bool = False,
                 batch_examples: int = 8):
        from transformers import AutoTokenizer

        from prefalign.engine.forward import PackedLogProbModel
        from prefalign.engine.loading import check_model, load_causal_lm

        self.path = str(path)
        self.device = default_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        impl = check_model(path, trust_remote_code=trust_remote_code)
        model = load_causal_lm(path, dtype=torch.float32, attn_implementation=impl,
                               trust_remote_code=trust_remote_code).to(self.device).eval()
        self.packed = PackedLogProbModel(model)
        self.batch_examples = batch_examples
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else 0

    def logps(self, examples: Sequence[SimpleNamespace]) -> list[list[float]]:
        """Summed log-probs of each example's responses (``prompt_ids`` + ``responses`` ids),
        ``batch_examples`` examples per packed forward (`engine.batched.batched_logps`)."""
        from prefalign.engine.batched import batched_logps

        if not examples:
            return []
        result = batched_logps(self.packed, examples, pad_token_id=self.pad_id, max_tokens=None,
                               max_examples=self.batch_examples)
        values = result.logps.float().tolist()
        return [row[:len(ex.responses)] for row, ex in zip(values, examples)]

    def response_examples(self, item: PromptItem, responses: Sequence[str]) -> SimpleNamespace:
        """One example: the prompt's ids and each response's ids, split exactly as training does."""
        prompt_ids, ids = None, []
        for text in responses:
            record = SFTRecord(item.prompt, response_value(item.prompt, text), system=item.system)
            ex, _ = tokenize_record(record, self.tokenizer, index=item.index)
            prompt_ids = ex.prompt_ids
            ids.append(ex.responses[0])
        return SimpleNamespace(prompt_ids=prompt_ids, responses=ids, index=item.index)

    def response_logps(self, groups) -> list[list[float]]:
        return self.logps([self.response_examples(item, responses) for item, responses in groups])
