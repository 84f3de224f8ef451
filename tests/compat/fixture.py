"""The TRL quickstart fixture: a tiny model, its tokenizer and two small data sets, built the
same way every time from torch, transformers and tokenizers only (no prefalign import), so the
bench script (run with TRL's environment) and the tests (prefalign's) use identical inputs."""

from __future__ import annotations

import json
import string
from pathlib import Path

TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
            "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
SPECIAL = ["<pad>", "<s>", "<|im_end|>", "<unk>", "<|im_start|>"]

QUESTIONS = ["What is 2+3?", "Name a colour.", "Say hello.", "What is 7*8?",
             "Spell cat.", "Count to three.", "Is ice cold?", "What is 10-4?"]
GOOD = ["5", "Blue.", "Hello!", "56", "c-a-t", "1 2 3", "Yes, ice is cold.", "6"]
BAD = ["7", "A tree.", "Bye.", "54", "d-o-g", "3 2 1", "No.", "five"]


def build_model(path: str | Path) -> Path:
    """A 2-layer Llama with a character-level tokenizer and a ChatML template."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    if (path / "config.json").exists():
        return path
    vocab = {t: i for i, t in enumerate(SPECIAL)}
    for ch in string.printable:
        if ch not in "\r\x0b\x0c" and ch not in vocab:
            vocab[ch] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIAL)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="<|im_end|>", unk_token="<unk>",
                                   chat_template=TEMPLATE, model_max_length=2048)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, pad_token_id=0, bos_token_id=1,
                         eos_token_id=2, tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        model = LlamaForCausalLM(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    return path


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def dpo_data(path: str | Path, kind: str = "conversational-implicit") -> Path:
    """Eight pairs (one default TRL batch), in one of TRL's formats."""
    rows = []
    for q, g, b in zip(QUESTIONS, GOOD, BAD):
        user = [{"role": "user", "content": q}]
        if kind == "conversational-implicit":  # like trl-lib/ultrafeedback_binarized
            rows.append({"chosen": user + [{"role": "assistant", "content": g}],
                         "rejected": user + [{"role": "assistant", "content": b}]})
        elif kind == "conversational":
            rows.append({"prompt": user, "chosen": [{"role": "assistant", "content": g}],
                         "rejected": [{"role": "assistant", "content": b}]})
        elif kind == "standard":
            rows.append({"prompt": q + " ", "chosen": g, "rejected": b})
        else:
            raise ValueError(kind)
    return _write(Path(path), rows)


def kto_data(path: str | Path) -> Path:
    """Eight unpaired rows, conversational like trl-lib/kto-mix-14k, labels alternating."""
    rows = []
    for i, (q, g, b) in enumerate(zip(QUESTIONS, GOOD, BAD)):
        good = i % 2 == 0
        rows.append({"prompt": [{"role": "user", "content": q}],
                     "completion": [{"role": "assistant", "content": g if good else b}],
                     "label": good})
    return _write(Path(path), rows)
