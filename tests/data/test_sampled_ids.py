"""Sampled token ids in records: used when they apply to the training tokenizer and prompt, the
text otherwise, and counted either way; decoding a continuation keeps its leading space."""

from __future__ import annotations

import functools

import pytest

from prefalign.data import PairRecord, TokenizationError, tokenize_prompt, tokenize_records
from prefalign.data.sampled import (
    FIELD, SampledIds, decode_continuation, tokenizer_fingerprint)
from prefalign.demo.tiny_models import TOKENIZER_KINDS, build_tokenizer

USER = [{"role": "user", "content": "What is 1+2?"}]


@functools.lru_cache(maxsize=None)
def tokenizer(kind="char", add_bos=False):
    return build_tokenizer(kind, add_bos=add_bos)


def ids_of(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def sampled_record(tok, prompt, responses_ids, *, fingerprint=None, prompt_ids=None, texts=None):
    """A record as synth writes it: the texts decoded in context, the ids beside them."""
    prompt_ids = tokenize_prompt(prompt, tok) if prompt_ids is None else prompt_ids
    if texts is None:
        texts = [decode_continuation(tok, prompt_ids, ids) for ids in responses_ids]
    if isinstance(prompt, list):
        texts = [[{"role": "assistant", "content": t}] for t in texts]
    meta = {FIELD: SampledIds(fingerprint or tokenizer_fingerprint(tok), prompt_ids,
                              list(responses_ids)).to_meta()}
    return PairRecord(prompt, texts[0], texts[1], meta=meta)


@pytest.mark.parametrize("kind", ["metaspace", "word"])
def test_a_continuation_keeps_its_leading_space(kind):
    tok = tokenizer(kind, add_bos=True)
    prompt_ids = tokenize_prompt("What is 1+2?", tok)
    answer = ids_of(tok, "What is 1+2? The answer is 3")[len(prompt_ids) - 1:]
    assert tok.decode(answer, skip_special_tokens=True) == "The answer is 3"  # alone: no space
    text = decode_continuation(tok, prompt_ids, answer)
    assert text == " The answer is 3"
    # prompt text + that text encodes to the sampled ids (they are the canonical ones here)
    (ex,), _ = tokenize_records([PairRecord("What is 1+2?", text, " 4")], tok)
    assert ex.responses[0] == answer + [tok.eos_token_id]


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat"])
def test_sampled_ids_are_trained_as_sampled(kind, chat):
    """Ids the policy sampled, even where the text re-encodes otherwise (a random model samples
    non-canonical pieces, e.g. one character at a time), are the trained response tokens, closed
    as text would be: EOS after plain text, the template's turn end after a chat turn."""
    tok = tokenizer(kind, add_bos=not chat)
    prompt = USER if chat else "What is 1+2?"
    pieces = [ids_of(tok, ch)[-1] for ch in "Hi"] + ids_of(tok, " there 3")
    other = ids_of(tok, "\n4")
    (ex,), report = tokenize_records([sampled_record(tok, prompt, [pieces, other])], tok)
    closing = ids_of(tok, "<|im_end|>\n") if chat else [tok.eos_token_id]
    assert ex.responses == [pieces + closing, other + closing]
    assert ex.prompt_ids == tokenize_prompt(prompt, tok)
    assert (report.responses_from_ids, report.responses_from_text) == (2, 0)
    assert not report.sampled_ids_unused
    assert "2 responses from sampled token ids, 0 from text" in report.summary()


def test_text_is_used_and_counted_when_the_tokenizer_differs():
    tok = tokenizer("bpe")
    pieces = [ids_of(tok, ch)[-1] for ch in " there"]  # non-canonical: " there" is fewer tokens
    record = sampled_record(tok, "Hello", [pieces, ids_of(tok, " world")],
                            fingerprint="sha256:" + "0" * 64)
    (ex,), report = tokenize_records([record], tok)
    assert ex.responses[0] == ids_of(tok, "Hello there")[len(ids_of(tok, "Hello")):] + [
        tok.eos_token_id] != pieces + [tok.eos_token_id]
    assert (report.responses_from_ids, report.responses_from_text) == (0, 2)
    assert report.sampled_ids_unused == {"tokenizer_differs": 2}
    assert "0 responses from sampled token ids, 2 from text" in report.summary()
    assert "tokenizer_differs: 2" in report.summary()


def test_text_is_used_when_the_prompt_or_the_text_changed():
    tok = tokenizer("char")
    ids = [ids_of(tok, " 3"), ids_of(tok, " 4")]
    moved = sampled_record(tok, "1+2=", ids, prompt_ids=ids_of(tok, "1+2 ="))
    edited = sampled_record(tok, "1+2=", ids, texts=[" 3", " four"])
    _, report = tokenize_records([moved, edited], tok)
    assert report.sampled_ids_unused == {"prompt_differs": 2, "text_changed": 1}
    assert (report.responses_from_ids, report.responses_from_text) == (1, 3)


def test_ids_the_model_does_not_have_are_never_trained():
    """Ids read from a file are data: a negative id or one past the vocabulary falls back to the
    text (counted), instead of crashing the tokenizer or indexing past the embeddings."""
    tok = tokenizer("char")
    good = ids_of(tok, " 4")
    negative = sampled_record(tok, "1+2=", [ids_of(tok, " 3"), good], texts=[" 3", " 4"])
    negative.meta[FIELD]["responses"][0] = [-1]
    past = sampled_record(tok, "1+2=", [ids_of(tok, " 3"), good], texts=[" 3", " 4"])
    past.meta[FIELD]["responses"][0] = [len(tok) + 3]
    examples, report = tokenize_records([negative, past], tok)
    assert report.sampled_ids_unused == {"malformed": 2, "out_of_vocabulary": 1}
    assert all(max(r) < len(tok) for ex in examples for r in ex.responses)


def test_fingerprint_is_stable_across_saving_and_differs_across_tokenizers(tmp_path):
    from transformers import AutoTokenizer

    tok = tokenizer("bpe")
    tok("warm up", padding=True, truncation=True, max_length=2)  # calls change backend state
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer_fingerprint(again) == tokenizer_fingerprint(tok)
    prints = {tokenizer_fingerprint(tokenizer(k, b)) for k in TOKENIZER_KINDS for b in (0, 1)}
    assert len(prints) == 2 * len(TOKENIZER_KINDS)
    again.chat_template = again.chat_template.replace("\\n", " ")
    assert tokenizer_fingerprint(again) != tokenizer_fingerprint(tok)


def test_word_level_text_decoded_alone_cannot_be_trained_but_sampled_ids_can():
    """The failure synth used to cause: "world" decoded without its space joins the prompt's last
    word into one unknown word, so no exact boundary exists; the ids (and the text decoded in
    context) train fine."""
    tok = tokenizer("word")
    prompt_ids, world = ids_of(tok, "Hello"), ids_of(tok, "world")
    with pytest.raises(TokenizationError, match="no exact token boundary"):
        tokenize_records([PairRecord("Hello", "world", " there")], tok)
    (ex,), report = tokenize_records([sampled_record(tok, "Hello", [world, ids_of(tok, "there")],
                                                     prompt_ids=prompt_ids)], tok)
    assert ex.responses[0] == world + [tok.eos_token_id] and report.responses_from_ids == 2


def _ranked(tok):
    from prefalign.data import RankedRecord

    prompt_ids = tokenize_prompt("Hello", tok)
    ids = [[ids_of(tok, ch)[-1] for ch in text] for text in (" a cat", " the dog", " there")]
    texts = [decode_continuation(tok, prompt_ids, i) for i in ids]
    meta = {FIELD: SampledIds(tokenizer_fingerprint(tok), prompt_ids, ids).to_meta()}
    return RankedRecord("Hello", texts, [0.1, 0.9, 0.5], meta=meta), ids


def test_conversions_keep_each_responses_sampled_ids():
    from prefalign.data import pairs_to_sft, pairs_to_unpaired, ranked_to_pairs

    tok = tokenizer("bpe")
    ranked, ids = _ranked(tok)
    pairs, _ = ranked_to_pairs([ranked])  # best vs worst: 1 vs 0
    assert pairs[0].meta[FIELD]["responses"] == [ids[1], ids[0]]
    unpaired = pairs_to_unpaired(pairs)
    assert [u.meta[FIELD]["responses"] for u in unpaired] == [[ids[1]], [ids[0]]]
    sft = pairs_to_sft(pairs)
    assert sft[0].meta[FIELD]["responses"] == [ids[1]]
    examples, report = tokenize_records([ranked, *pairs, *unpaired, *sft], tok)
    assert (report.responses_from_ids, report.responses_from_text) == (3 + 2 + 2 + 1, 0)
    assert examples[-1].responses == [ids[1] + [tok.eos_token_id]]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_sampled_ids_survive_writing_and_reading(tmp_path, suffix):
    from prefalign.data import load_records, save_records

    tok = tokenizer("bpe")
    ranked, ids = _ranked(tok)
    from prefalign.data import RankedRecord

    plain = RankedRecord("Hi", [" a", " b"], [1.0, 0.0])  # a row without sampled ids
    save_records([ranked, plain], tmp_path / f"data{suffix}")
    records, _ = load_records(tmp_path / f"data{suffix}")
    examples, report = tokenize_records(records, tok)
    assert examples[0].responses == [i + [tok.eos_token_id] for i in ids]
    assert (report.responses_from_ids, report.responses_from_text) == (3, 2)
