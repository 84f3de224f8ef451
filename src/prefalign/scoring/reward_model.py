"""A reward model: ``AutoModelForSequenceClassification`` whose logit (column ``label``, default
0) is the score. Inputs are the full conversation rendered with the model's chat template when it
has one (as RLHFlow/ArmoRM-style reward models expect), else ``prompt + response``. Batched with
right padding and an attention mask (sequence classifiers read the last non-pad token)."""

from __future__ import annotations

from typing import Sequence

import torch

from prefalign.data.records import is_conversational

from .base import Group, Scorer, Score, per_group
from .models import default_device
from .registry import scorer_kind


class RewardModelScorer(Scorer):
    name = "rm"

    def __init__(self, path: str, *, batch_size: int = 8, max_length: int = 4096,
                 label: int = 0, device: str | None = None, trust_remote_code: bool = False):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        super().__init__()
        self.path, self.batch_size, self.max_length, self.label = str(path), batch_size, max_length, label
        self.device = default_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        self.tokenizer.padding_side = "right"
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path, dtype=torch.float32, trust_remote_code=trust_remote_code).to(self.device).eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id

    def _text(self, item, response: str) -> str:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            convo = item.messages() + [{"role": "assistant", "content": response}]
            return tok.apply_chat_template(convo, tokenize=False)
        prompt = item.text() if is_conversational(item.prompt) else item.prompt
        return (f"{item.system}\n\n" if item.system else "") + prompt + response

    @torch.no_grad()
    def score(self, groups: Sequence[Group]) -> list[list[Score]]:
        texts = [self._text(item, r) for item, responses in groups for r in responses]
        values: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt",
                                 padding=True, truncation=True, max_length=self.max_length,
                                 add_special_tokens=False)
            enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            logits = self.model(**enc).logits.float()
            values.extend(logits[:, self.label].cpu().tolist())
        return per_group([Score(v) for v in values], groups)

    def describe(self) -> dict:
        return {"scorer": self.name, "model": self.path, "label": self.label}


@scorer_kind("rm", args="`PATH`",
             summary="`AutoModelForSequenceClassification` logit; input is the conversation "
                     "through the RM's chat template",
             options={"label": "logit column (0)", "batch_size": "responses per forward (8)",
                      "max_length": "tokens per input (4096)"})
def _build(args: str, options: dict, device: str | None) -> Scorer:
    return RewardModelScorer(args, device=device, **options)
