"""Reward models: a causal LM checkpoint with a scalar head, and batched scoring.

`load_reward_model` builds ``AutoModelForSequenceClassification(num_labels=1)`` from any causal
LM folder (the head is new and randomly initialised) or loads a trained reward model. Hugging
Face pools the score at the rightmost token that is not ``config.pad_token_id``; we always set
that id (the tokenizer's pad token, else its EOS) so a right-padded batch scores each sequence
at its last real token. When pad and EOS are one id, a trailing EOS counts as padding and the
score is read at the token before it, the same way for every sequence.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch


def load_reward_model(path: str | os.PathLike, *, dtype: torch.dtype = torch.float32,
                      trust_remote_code: bool = False, device: str | None = None):
    """(model, tokenizer) with ``model.config.pad_token_id`` set for last-token pooling."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise ValueError(f"{path}: the tokenizer has neither a pad nor an EOS token; set "
                             "tokenizer.pad_token so batched scores can find each sequence's end")
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, dtype=dtype, trust_remote_code=trust_remote_code)
    model.config.pad_token_id = tokenizer.pad_token_id
    if device is not None:
        model.to(device)
    return model, tokenizer


def pad_batch(sequences: Sequence[Sequence[int]], pad_token_id: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded [B, T] input ids and attention mask."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, :len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, :len(s)] = 1
    return ids, mask


def rewards_of(model, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """[B] rewards of token-id sequences in one forward (gradients flow when enabled)."""
    if any(len(s) == 0 for s in sequences):
        raise ValueError("cannot score an empty sequence")
    ids, mask = pad_batch(sequences, model.config.pad_token_id)
    device = next(model.parameters()).device
    return model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, 0].float()


class RewardModel:
    """A loaded reward model that scores texts or token ids in batches (no gradient)."""

    def __init__(self, model, tokenizer):
        self.model = model.eval()
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs) -> "RewardModel":
        return cls(*load_reward_model(path, **kwargs))

    @torch.no_grad()
    def score_ids(self, sequences: Sequence[Sequence[int]], *, batch_size: int = 16
                  ) -> torch.Tensor:
        out = [rewards_of(self.model, sequences[i:i + batch_size])
               for i in range(0, len(sequences), batch_size)]
        return torch.cat(out) if out else torch.zeros(0)

    def score(self, texts: Sequence[str], *, batch_size: int = 16,
              max_length: int | None = None) -> list[float]:
        """Rewards of full texts (prompt and response already rendered together)."""
        enc = self.tokenizer(list(texts), add_special_tokens=True, truncation=max_length is not None,
                             max_length=max_length)["input_ids"]
        return self.score_ids(enc, batch_size=batch_size).tolist()

    def score_examples(self, examples: Sequence, *, batch_size: int = 16) -> torch.Tensor:
        """[E, K] rewards of tokenized examples (prompt ids + each response)."""
        k = max(len(ex.responses) for ex in examples)
        seqs = [list(ex.prompt_ids) + list(r) for ex in examples for r in ex.responses]
        flat = self.score_ids(seqs, batch_size=batch_size)
        out = torch.full((len(examples), k), float("nan"))
        i = 0
        for e, ex in enumerate(examples):
            n = len(ex.responses)
            out[e, :n] = flat[i:i + n]
            i += n
        return out


def score(path: str | os.PathLike, texts: Sequence[str], *, batch_size: int = 16) -> list[float]:
    """Load the reward model at ``path`` and score ``texts``."""
    return RewardModel.from_pretrained(path).score(texts, batch_size=batch_size)
