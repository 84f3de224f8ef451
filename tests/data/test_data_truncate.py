"""Truncation policies: prompt + each response fits max_length; every cut and drop is counted."""

from __future__ import annotations

import logging

import pytest

from prefalign.data import (
    PairRecord, SFTRecord, TokenizationError, load_records, tokenize_records)
from prefalign.data.truncate import fit
from prefalign.demo.tiny_models import build_tokenizer

P = [1, 10, 11, 12, 13, 14]          # a prompt starting with BOS (id 1)
R = [[20, 21, 22, 23], [30, 31]]     # longest response: 4 tokens


def test_rows_that_fit_are_untouched():
    out = fit(P, R, max_length=10, policy="keep_start")
    assert (out.prompt_ids, out.responses, out.truncated, out.dropped) == (P, R, False, None)


def test_keep_start_cuts_responses_from_the_end():
    out = fit(P, R, max_length=8, policy="keep_start")
    assert out.prompt_ids == P and out.responses == [[20, 21], [30, 31]]
    assert out.responses_cut and not out.prompt_cut


def test_keep_start_cuts_a_prompt_that_alone_is_too_long_keeping_one_response_token():
    out = fit(P, R, max_length=4, policy="keep_start")
    assert out.prompt_ids == [1, 10, 11] and out.responses == [[20], [30]]
    assert out.prompt_cut and out.responses_cut


def test_truncate_prompt_left_cuts_the_prompt_first_and_keeps_bos():
    out = fit(P, R, max_length=8, policy="truncate_prompt_left", bos_token_id=1)
    assert out.prompt_ids == [1, 12, 13, 14] and out.responses == R
    assert out.prompt_cut and not out.responses_cut


def test_truncate_prompt_left_then_cuts_responses_when_the_prompt_is_down_to_one_token():
    out = fit(P, R, max_length=3, policy="truncate_prompt_left", bos_token_id=None)
    assert out.prompt_ids == [14] and out.responses == [[20, 21], [30, 31]]


def test_max_prompt_length_per_policy():
    assert fit(P, R, max_length=None, policy="keep_start", max_prompt_length=3).prompt_ids == [
        1, 10, 11]
    assert fit(P, R, max_length=None, policy="truncate_prompt_left", max_prompt_length=3,
               bos_token_id=1).prompt_ids == [1, 13, 14]
    assert fit(P, R, max_length=None, policy="drop", max_prompt_length=3).dropped == (
        "prompt_too_long")


def test_drop_policy_drops_rows_that_do_not_fit():
    assert fit(P, R, max_length=9, policy="drop").dropped == "too_long"
    assert fit(P, R, max_length=10, policy="drop").dropped is None


def test_bad_limits_are_refused():
    tok = build_tokenizer("char")
    for kwargs in ({"truncation": "keep_end"}, {"max_length": 1},
                   {"max_length": 8, "max_prompt_length": 8}, {"max_prompt_length": 0}):
        with pytest.raises(ValueError):
            tokenize_records([SFTRecord("p", "c")], tok, **kwargs)


# char tokenizer with BOS: token counts are prompt 1 + chars, responses chars + EOS
RECORDS = [PairRecord("Q: 1+1?", " 2", " 3"),                         # 8 + (3, 3): fits
           PairRecord("Q: word?", " Antidisestablishment", " cat"),   # 9 + (22, 5): too long
           PairRecord("A very long prompt that goes on and on. Q?", " yes", " no"),  # 43 + (5, 4)
           PairRecord("Q: 2+2?", " four", " 4")]                      # 8 + (6, 3): fits


@pytest.mark.parametrize("policy", ["keep_start", "truncate_prompt_left", "drop"])
def test_tokenize_records_reports_every_affected_row(policy, caplog):
    tok = build_tokenizer("char", add_bos=True)
    with caplog.at_level(logging.WARNING, logger="prefalign.data"):
        examples, report = tokenize_records(RECORDS, tok, max_length=16, truncation=policy)
    for ex in examples:
        assert all(len(ex.prompt_ids) + len(r) <= 16 for r in ex.responses)
    assert report.records == 4 and report.policy == policy
    if policy == "drop":
        assert [e.index for e in examples] == [0, 3]
        assert report.dropped == {"too_long": 2} and report.truncated == 0
        assert "dropped 2" in report.summary()
    else:
        assert [e.index for e in examples] == [0, 1, 2, 3]
        assert report.truncated == 2 and not report.dropped
        assert "truncated 2" in report.summary()
    if policy == "keep_start":
        assert report.prompt_truncated == 1 and report.responses_truncated == 2
        assert examples[1].prompt_ids == tok("Q: word?")["input_ids"]
        # the long prompt is cut to 15 tokens and both answers to their first token (" ")
        assert len(examples[2].prompt_ids) == 15 and examples[2].responses[0] == [
            tok.convert_tokens_to_ids("Ġ")]
        assert report.identical_after_truncation == 1
    if policy == "truncate_prompt_left":
        assert report.prompt_truncated == 2 and report.responses_truncated == 1
        # the long response leaves room for one prompt token, the last one
        assert examples[1].prompt_ids == tok("?", add_special_tokens=False)["input_ids"]
        assert len(examples[1].responses[0]) == 15
        long_prompt = examples[2].prompt_ids
        assert len(long_prompt) == 11 and [len(r) for r in examples[2].responses] == [5, 4]
        assert long_prompt[0] == tok.bos_token_id and long_prompt.count(tok.bos_token_id) == 1
    assert any(report.summary() in r.getMessage() for r in caplog.records)


def test_no_limit_means_nothing_is_cut():
    examples, report = tokenize_records(RECORDS, build_tokenizer("char"))
    assert len(examples) == 4 and report.truncated == 0 and not report.dropped
    assert report.summary() == "tokenized 4 records into 4 examples"


class _WordTokenizer:
    """A stub whose decoder joins tokens with spaces, so no split of "ab" after "a" decodes back."""

    bos_token_id, eos_token_id, eos_token, chat_template = None, 0, "</s>", None
    vocab = {"</s>": 0, "ab": 1, "a": 2, "b": 3, "\n": 4}

    def __call__(self, texts, add_special_tokens=True):
        one = isinstance(texts, str)
        ids = [[self.vocab[w] for w in self._words(t)] for t in ([texts] if one else texts)]
        return {"input_ids": ids[0] if one else ids}

    def _words(self, text):
        words, i = [], 0
        while i < len(text):
            w = text[i:i + 2] if text[i:i + 2] == "ab" else text[i]
            words.append(w)
            i += len(w)
        return words

    def decode(self, ids, **_):
        inverse = {v: k for k, v in self.vocab.items()}
        return " ".join(inverse[i] for i in ids)


def test_no_exact_split_raises_a_clear_error_naming_the_row_and_field():
    with pytest.raises(TokenizationError) as err:
        tokenize_records([SFTRecord("a", "b")], _WordTokenizer())
    assert str(err.value).startswith(
        "records, row 0 (0-based), field 'completion': no exact token boundary")
    assert err.value.field == "completion" and err.value.reason == "tokenization"


def test_no_exact_split_names_the_source_file_line_and_field(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "b", "chosen": "a", "rejected": "b"}\n\n'
                    '{"prompt": "a", "chosen": "a", "rejected": "b"}\n')
    records, _ = load_records(path)
    with pytest.raises(TokenizationError) as err:  # "a" + "b" tokenizes as "ab": no split
        tokenize_records(records, _WordTokenizer())
    assert str(err.value).startswith(f"{path}, line 3, field 'rejected': no exact token boundary")
    examples, report = tokenize_records(records, _WordTokenizer(), on_error="skip")
    assert [ex.index for ex in examples] == [0] and report.skipped == {"tokenization": 1}
    assert report.problems == [str(err.value)]
    assert "skipped 1 (tokenization: 1; first problem: " in report.summary()
