"""Tiny causal LMs and tokenizers built offline, saved in Hugging Face format.

Tests, examples and the demo load these exactly as users load real models
(`AutoModelForCausalLM.from_pretrained(path)`, `AutoTokenizer.from_pretrained(path)`), so every
code path that touches a model is exercised without a download.

Four tokenizers:
- ``char``: one token per character (printable ASCII and newline) plus special tokens. Prompt and
  response tokenize independently, so the prompt is always a prefix of prompt+response.
- ``bpe``: byte-level BPE trained on a small built-in corpus. Merges cross the prompt/response
  boundary ("the" + "re" -> "there"), which is the case the data layer must handle exactly.
- ``metaspace``: SentencePiece style (Llama 2, Mistral, Gemma): a Unigram model trained on the
  same corpus behind a Metaspace pre-tokenizer (spaces become "▁", one is prepended to the start
  of the text) and a Metaspace decoder, so ids decoded on their own lose a leading space
  (``decode(encode(" world")) == "world"``).
- ``word``: a WordLevel vocabulary (the corpus's words, every printable character, the numbers
  0-199) behind a Whitespace pre-tokenizer that also splits punctuation marks apart, decoded by joining words with single spaces: text
  does not round-trip (newlines and runs of spaces become one space), ids do.

``metaspace`` and ``word`` need a family whose tokenizer transformers loads from tokenizer.json
as it is (llama, mistral, gemma); it loads Qwen2's as a byte-level BPE rebuilt from the vocabulary.

Each tokenizer carries a ChatML-style chat template. The Llama flavour also adds a BOS token on
encode *and* renders one in its template, like real Llama tokenizers, so double-BOS bugs show up.
"""

from __future__ import annotations

import os
import string
from pathlib import Path


FAMILIES = ("llama", "qwen2", "mistral", "gemma", "gemma2")
# Sliding windows shorter than typical test sequences, so a dropped window shows.
SLIDING_WINDOW = 8
TOKENIZER_KINDS = ("char", "bpe", "metaspace", "word")
# transformers rebuilds a Qwen2 tokenizer as byte-level BPE from its vocabulary on load
BYTE_LEVEL_ONLY_FAMILIES = ("qwen2",)



PAD, BOS, EOS, UNK = "<pad>", "<s>", "<|im_end|>", "<unk>"
IM_START = "<|im_start|>"
SPIECE = "\u2581"  # SentencePiece's space
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


def _unigram_vocab() -> list[tuple[str, float]]:
    """A Unigram vocabulary with log-frequency scores from the corpus, built by hand rather than
    by `UnigramTrainer`, whose scores (and so segmentations) vary from run to run: the special
    tokens, every printable character and "▁", and each corpus word (and the chat roles) with
    and without "▁"."""
    import math
    import re
    from collections import Counter

    counts: Counter = Counter()
    for word in re.findall(r"\w+|[^\w\s]+", _BPE_CORPUS) + ["user", "assistant", "system"]:
        counts[SPIECE + word] += 1
        counts[word] += 1
    for ch in string.printable + SPIECE:
        if ch not in "\r\x0b\x0c":
            counts[ch] += 1 + _BPE_CORPUS.count(ch)
    total = sum(counts.values())
    scored = sorted(((piece, math.log(n / total)) for piece, n in counts.items()),
                    key=lambda ps: (-ps[1], ps[0]))
    return [(tok, 0.0) for tok in SPECIAL_TOKENS] + scored


def _word_vocab() -> dict[str, int]:
    """Special tokens, printable characters, the numbers 0-199, then the corpus's words."""
    import re

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    pieces = [ch for ch in string.printable if not ch.isspace()]
    pieces += [str(n) for n in range(200)] + ["user", "assistant", "system"]
    pieces += re.findall(r"\w+", _BPE_CORPUS)
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
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
    elif kind == "metaspace":
        tok = Tokenizer(models.Unigram(_unigram_vocab(), unk_id=SPECIAL_TOKENS.index(UNK),
                                       byte_fallback=False))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPIECE, prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement=SPIECE, prepend_scheme="first")
    elif kind == "word":
        tok = Tokenizer(models.WordLevel(vocab=_word_vocab(), unk_token=UNK))
        # words and single punctuation marks ("=?" is two tokens, not an unknown one)
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation("isolated")])
        # WordPiece's decoder joins tokens with a space (no "##" pieces here), without cleanup
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
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
        return transformers.MistralConfig(**common, tie_word_embeddings=False,
                                          sliding_window=SLIDING_WINDOW)
    if family == "gemma":
        return transformers.GemmaConfig(**common, head_dim=hidden // heads)
    if family == "gemma2":  # sliding/full layers, soft-capping: eager attention only
        return transformers.Gemma2Config(**common, head_dim=hidden // heads,
                                         sliding_window=SLIDING_WINDOW,
                                         query_pre_attn_scalar=hidden // heads)
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
    if tokenizer in ("metaspace", "word") and family in BYTE_LEVEL_ONLY_FAMILIES:
        raise ValueError(f"the {tokenizer!r} tokenizer does not survive loading as a {family} "
                         "tokenizer (transformers rebuilds it as byte-level BPE); use family "
                         "llama, mistral or gemma, or tokenizer char or bpe")
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
