"""Tiny causal LMs and tokenizers built offline, saved in Hugging Face format.

Tests, examples and the demo load these exactly as users load real models
(`AutoModelForCausalLM.from_pretrained(path)`, `AutoTokenizer.from_pretrained(path)`), so every
code path that touches a model is exercised without a download.

Two tokenizers:
- ``char``: one token per character (printable ASCII and newline) plus special tokens. Prompt and
  response tokenize independently, so the prompt is always a prefix of prompt+response.
- ``bpe``: byte-level BPE trained on a small built-in corpus. Merges cross the prompt/response
  boundary ("the" + "re" -> "there"), which is the case the data layer must handle exactly.

Each tokenizer carries a ChatML-style chat template. The Llama flavour also adds a BOS token on
encode *and* renders one in its template, like real Llama tokenizers, so double-BOS bugs show up.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

FAMILIES = ("llama", "qwen2", "mistral", "gemma")
TOKENIZER_KINDS = ("char", "bpe")

PAD, BOS, EOS, UNK = "<pad>", "<s>", "<|im_end|>", "<unk>"
IM_START = "<|im_start|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, IM_START]

# ChatML: "<|im_start|>role\ncontent<|im_end|>\n"; the generation prompt opens an assistant turn.
CHATML_TEMPLATE = (
    "{% if add_bos %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_BPE_CORPUS = """\
The quick brown fox jumps over the lazy dog. There is a theory that the answer is there.
What is the capital of France? The capital of France is Paris. Please answer the question.
User: write a short poem about the sea. Assistant: The sea is wide, the sea is deep.
Numbers: 1 2 3 4 5 6 7 8 9 10 11 12 100 1000. 12+35=47. 7*8=56. 99-1=98.
def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n
Hello world! Hello there. Thank you very much. You are welcome. Here is the result.
I think therefore I am. They were there with their friends. Where are the others?
""" * 4


def _char_vocab() -> dict[str, int]:
    """Special tokens, then printable ASCII and newline in byte-level spelling (space is 'Ġ').

    Byte-level spelling lets tokenizer classes that rebuild a byte-level pipeline from the saved
    vocabulary (transformers maps Qwen2 models to such a class) read the same vocabulary.
    """
    byte_to_char = _bytes_to_unicode()
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in string.printable:
        if ch not in "\r\x0b\x0c":
            vocab.setdefault(byte_to_char[ord(ch)], len(vocab))
    return vocab


def _bytes_to_unicode() -> list[str]:
    """GPT-2's reversible byte -> printable character map, as a list indexed by byte."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def build_tokenizer(kind: str = "char", *, add_bos: bool = False, bpe_vocab_size: int = 400):
    """Return a `PreTrainedTokenizerFast` with a chat template, built with no network access.

    ``add_bos`` makes the tokenizer prepend BOS on encode and the template render it (Llama style).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "char":
        # BPE with an empty merge list tokenizes character by character.
        tok = Tokenizer(models.BPE(vocab=_char_vocab(), merges=[], unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        tok.decoder = decoders.ByteLevel()
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=bpe_vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(_BPE_CORPUS.splitlines(keepends=True), trainer=trainer)
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}; choose one of {TOKENIZER_KINDS}")
    tok.add_special_tokens(SPECIAL_TOKENS)
    if add_bos:
        bos_id = tok.token_to_id(BOS)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    template = CHATML_TEMPLATE.replace("add_bos", "true" if add_bos else "false")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        chat_template=template, padding_side="right", model_max_length=4096)


def _config(family: str, vocab_size: int, tokenizer, *, hidden: int, layers: int, heads: int,
            kv_heads: int, intermediate: int, max_positions: int):
    import transformers

    common = dict(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    if family == "llama":
        return transformers.LlamaConfig(**common, tie_word_embeddings=False)
    if family == "qwen2":
        return transformers.Qwen2Config(**common, tie_word_embeddings=True)
    if family == "mistral":
        return transformers.MistralConfig(**common, tie_word_embeddings=False, sliding_window=None)
    if family == "gemma":
        return transformers.GemmaConfig(**common, head_dim=hidden // heads)
    raise ValueError(f"unknown model family {family!r}; choose one of {FAMILIES}")


def build_tiny_model(path: str | os.PathLike, *, family: str = "llama", tokenizer: str = "char",
                     hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                     intermediate: int | None = None, max_positions: int = 2048,
                     seed: int = 0, add_bos: bool | None = None) -> Path:
    """Build a random-weight causal LM and its tokenizer, save both to ``path`` and return it.

    ``add_bos`` defaults to True for Llama (as real Llama tokenizers do) and False otherwise.
    The same arguments always give the same weights.
    """
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if add_bos is None:
        add_bos = family == "llama"
    tok = build_tokenizer(tokenizer, add_bos=add_bos)
    config = _config(family, len(tok), tok, hidden=hidden, layers=layers, heads=heads,
                     kv_heads=kv_heads, intermediate=intermediate or 2 * hidden,
                     max_positions=max_positions)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path
