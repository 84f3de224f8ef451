"""Tokenization boundaries: prompt ids are what generation sees; response ids are exactly what the
model must predict after them; BOS once, EOS after plain-text responses, template closers kept."""

from __future__ import annotations

import functools
import json

import pytest

from prefalign.data import (
    PairRecord, RankedRecord, SFTRecord, TokenizationError, UnpairedRecord, load_records,
    render_prompt, render_response, tokenize_prompt, tokenize_records)
from prefalign.demo.tiny_models import EOS, build_tiny_model, build_tokenizer

KINDS = [("char", False), ("char", True), ("bpe", False), ("bpe", True)]
USER = [{"role": "user", "content": "What is the capital of France?"}]
PARIS = [{"role": "assistant", "content": "The capital of France is Paris."}]
ROME = [{"role": "assistant", "content": "Rome."}]


@functools.lru_cache(maxsize=None)
def tokenizer(kind="char", add_bos=False):
    return build_tokenizer(kind, add_bos=add_bos)


def decode(tok, ids):
    return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


@pytest.mark.parametrize("kind,add_bos", KINDS)
def test_plain_text_prompt_is_what_generation_feeds_and_eos_ends_the_response(kind, add_bos):
    tok = tokenizer(kind, add_bos)
    record = PairRecord("I think the", "re is a theory.", "y are here.")
    (ex,), report = tokenize_records([record], tok)
    assert ex.prompt_ids == tok("I think the")["input_ids"] == tokenize_prompt("I think the", tok)
    assert ex.prompt_ids.count(tok.bos_token_id) == int(add_bos)
    bos = "<s>" if add_bos else ""
    for ids, text in zip(ex.responses, ("re is a theory.", "y are here.")):
        assert ids[-1] == tok.eos_token_id and ids.count(tok.eos_token_id) == 1
        assert decode(tok, ex.prompt_ids + ids) == bos + "I think the" + text + EOS
    assert ex.kind == "pairwise" and ex.index == 0


@pytest.mark.parametrize("kind,add_bos", KINDS)
def test_conversational_boundary_matches_the_chat_template(kind, add_bos):
    tok = tokenizer(kind, add_bos)
    (ex,), _ = tokenize_records([PairRecord(USER, PARIS, ROME, margin=2.0)], tok)
    generation = tok.apply_chat_template(USER, tokenize=True, add_generation_prompt=True)
    assert ex.prompt_ids == generation["input_ids"]
    assert ex.prompt_ids.count(tok.bos_token_id) == int(add_bos)  # never a double BOS
    full = tok.apply_chat_template(USER + PARIS, tokenize=False)
    assert decode(tok, ex.prompt_ids + ex.responses[0]) == full
    # the assistant turn's closing tokens are part of the response; no extra EOS is added
    closing = tok("<|im_end|>\n", add_special_tokens=False)["input_ids"]
    for ids in ex.responses:
        assert ids[-len(closing):] == closing and ids.count(tok.eos_token_id) == 1
    assert decode(tok, ex.responses[1]) == "Rome.<|im_end|>\n"
    assert ex.margin == 2.0 and ex.scores is None


def test_bpe_merge_across_the_boundary_is_split_exactly():
    tok = tokenizer("bpe")
    prompt, response = "I think the", "re is a theory."
    assert tok.tokenize(prompt)[-1] == "Ġthe" and "Ġthere" in tok.tokenize(prompt + response)
    (ex,), report = tokenize_records([SFTRecord(prompt, response)], tok)
    assert ex.prompt_ids == tok(prompt)["input_ids"]
    assert decode(tok, ex.prompt_ids + ex.responses[0]) == prompt + response + EOS
    assert report.boundary_retokenized == 1
    assert render_response(prompt, response, tok) == response + EOS


def test_prefix_case_uses_the_joint_tokenization():
    tok = tokenizer("bpe")
    (ex,), report = tokenize_records([SFTRecord("Hello world!", " Thank you.")], tok)
    joint = tok("Hello world! Thank you.")["input_ids"]
    assert ex.prompt_ids + ex.responses[0] == joint + [tok.eos_token_id]
    assert report.boundary_retokenized == 0


def test_a_completion_already_ending_with_eos_gets_no_second_one():
    tok = tokenizer("char")
    (ex,), _ = tokenize_records([SFTRecord("Q:", " A." + EOS)], tok)
    assert ex.responses[0].count(tok.eos_token_id) == 1 and ex.responses[0][-1] == tok.eos_token_id


def test_every_kind_carries_its_fields():
    tok = tokenizer("char")
    records = [PairRecord("p", "a", "b", score_chosen=1.0, score_rejected=0.0),
               UnpairedRecord("p", "a", False),
               RankedRecord("p", ["a", "bb", "ccc"], [0.1, 0.5, 0.2]),
               SFTRecord("p", "a")]
    examples, report = tokenize_records(records, tok)
    assert [e.kind for e in examples] == ["pairwise", "unpaired", "ranked", "sft"]
    assert [e.index for e in examples] == [0, 1, 2, 3]
    assert examples[0].scores == [1.0, 0.0] and examples[0].margin is None
    assert examples[1].label is False and len(examples[1].responses) == 1
    assert examples[2].scores == [0.1, 0.5, 0.2] and len(examples[2].responses) == 3
    assert examples[3].label is None and examples[3].scores is None
    assert report.records == report.examples == 4


def test_system_prompt_as_a_message_or_a_paragraph():
    tok = tokenizer("char")
    assert render_prompt(USER, tok, system="Be brief.") == tok.apply_chat_template(
        [{"role": "system", "content": "Be brief."}] + USER, tokenize=False,
        add_generation_prompt=True)
    assert render_prompt("Q?", tok, system="Be brief.") == "Be brief.\n\nQ?"
    record = PairRecord(USER, PARIS, ROME, system="Own.")
    (ex,), _ = tokenize_records([record], tok, system="Default.")
    assert decode(tok, ex.prompt_ids).startswith("<|im_start|>system\nOwn.<|im_end|>")
    (ex,), _ = tokenize_records([PairRecord(USER, PARIS, ROME)], tok, system="Default.")
    assert decode(tok, ex.prompt_ids).startswith("<|im_start|>system\nDefault.<|im_end|>")


def test_conversational_data_needs_a_chat_template():
    tok = build_tokenizer("char")
    tok.chat_template = None
    with pytest.raises(TokenizationError, match="needs a tokenizer with a chat template"):
        tokenize_records([PairRecord(USER, PARIS, ROME)], tok)


def test_a_template_whose_prompt_is_not_a_prefix_is_refused_clearly():
    tok = build_tokenizer("char")
    # the generation prompt opens the answer with '>>> ', the rendered answer with 'assistant: '
    tok.chat_template = (
        "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '>>> ' }}{% endif %}")
    with pytest.raises(TokenizationError, match="no exact prompt/response boundary"):
        tokenize_records([PairRecord(USER, PARIS, ROME)], tok)


def test_records_are_validated_before_tokenizing():
    from prefalign.data import DataError

    with pytest.raises(DataError, match=r"records, row 1 \(0-based\), field 'chosen'"):
        tokenize_records([SFTRecord("p", "c"), PairRecord("p", "", "r")], tokenizer("char"))


@pytest.mark.parametrize("family,kind", [("qwen2", "bpe"), ("llama", "bpe")])
def test_boundaries_hold_for_tokenizers_loaded_from_disk(tmp_path, family, kind):
    from transformers import AutoTokenizer

    path = build_tiny_model(tmp_path / family, family=family, tokenizer=kind, hidden=8, layers=1,
                            heads=2, kv_heads=1, max_positions=64)
    tok = AutoTokenizer.from_pretrained(path)
    records = [PairRecord("I think the", "re is a theory.", "y are here."),
               PairRecord(USER, PARIS, ROME)]
    examples, _ = tokenize_records(records, tok)
    plain, chat = examples
    assert plain.prompt_ids == tok("I think the")["input_ids"]
    bos = tok.bos_token if family == "llama" else ""
    assert decode(tok, plain.prompt_ids + plain.responses[0]) == (
        bos + "I think there is a theory." + tok.eos_token)
    assert chat.prompt_ids == tok.apply_chat_template(
        USER, tokenize=True, add_generation_prompt=True)["input_ids"]
    assert decode(tok, chat.prompt_ids + chat.responses[0]) == tok.apply_chat_template(
        USER + PARIS, tokenize=False)
    assert chat.prompt_ids.count(tok.bos_token_id) == int(family == "llama")


# A template in the style of Llama 2 / Mistral: it raises when roles do not alternate.
ALTERNATING = (
    "{% for m in messages %}"
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def test_a_chat_template_that_raises_names_the_file_line_and_field(tmp_path):
    tok = build_tokenizer("char")
    tok.chat_template = ALTERNATING
    twice = [{"role": "assistant", "content": "Paris."}, {"role": "assistant", "content": "Yes."}]
    path = tmp_path / "chat.jsonl"
    rows = [{"prompt": USER, "chosen": PARIS, "rejected": ROME},
            {"prompt": USER + USER, "chosen": PARIS, "rejected": ROME},  # prompt: user, user
            {"prompt": USER, "chosen": PARIS, "rejected": twice}]  # rejected: two assistant turns
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records, _ = load_records(path)
    with pytest.raises(TokenizationError) as err:
        tokenize_records(records, tok)
    assert str(err.value) == (f"{path}, line 2, field 'prompt': the chat template refused this "
                              "conversation: Conversation roles must alternate "
                              "user/assistant/user/assistant/...")
    with pytest.raises(TokenizationError, match=f"^{path}, line 3, field 'rejected': the chat "):
        tokenize_records([records[0], records[2]], tok)
    examples, report = tokenize_records(records, tok, on_error="skip")
    assert [ex.index for ex in examples] == [0]
    assert report.skipped == {"chat_template_error": 2} and len(report.problems) == 2
    assert report.records == 3 and report.examples == 1


def test_a_template_that_does_not_compile_is_raised_even_when_skipping():
    tok = build_tokenizer("char")
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}"  # no endfor
    with pytest.raises(TokenizationError, match="the chat template does not compile") as err:
        tokenize_records([PairRecord(USER, PARIS, ROME)], tok, on_error="skip")
    assert err.value.reason == "bad_chat_template"


def test_a_record_built_in_python_is_placed_by_its_row():
    tok = build_tokenizer("char")
    tok.chat_template = ALTERNATING
    good, bad = PairRecord(USER, PARIS, ROME), PairRecord(USER + USER, PARIS, ROME)
    with pytest.raises(TokenizationError, match=r"^records, row 1 \(0-based\), field 'prompt': "):
        tokenize_records([good, bad], tok)


def test_responses_that_tokenize_to_the_same_ids_are_counted_and_named():
    """Different texts that the vocabulary maps to the same ids (characters it lacks become one
    unknown token) leave a pair without preference signal: it is counted and the summary says
    why (it was trained on silently)."""
    tok = tokenizer("char")
    same = [PairRecord(prompt="Q: which?", chosen="答", rejected="错"),  # both one unknown token
            PairRecord(prompt="Q: which?", chosen="a", rejected="b")]
    assert tok("答")["input_ids"] == tok("错")["input_ids"], "the test needs unknown characters"
    examples, report = tokenize_records(same, tok)
    assert len(examples) == 2 and report.identical_tokens == 1
    assert report.identical_after_truncation == 0
    assert "1 rows have different response texts that tokenize to the same ids" in report.summary()
