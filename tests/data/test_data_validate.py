"""Every validation error names the file, the line (1-based) or row (0-based), and the field."""

from __future__ import annotations

import json
import logging

import pytest

from prefalign.data import DataError, PairRecord, load_records, validate_record, write_parquet

USER = [{"role": "user", "content": "Hi?"}]
A = [{"role": "assistant", "content": "Hello."}]
B = [{"role": "assistant", "content": "Go away."}]
GOOD = {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No."}

# (row, field, start of the problem, reason)
BAD_ROWS = [
    ({"prompt": "p", "chosen": "", "rejected": "r"}, "chosen",
     "empty string; every pair needs a non-empty chosen response", "empty_field"),
    ({"prompt": "p", "chosen": "   ", "rejected": "r"}, "chosen", "only whitespace",
     "empty_field"),
    ({"chosen": "c", "rejected": "r"}, "prompt",
     "missing, and chosen/rejected share no leading words to use as the prompt",
     "no_shared_prompt"),
    ({"prompt": "p", "chosen": "c", "rejected": None}, "rejected", "missing", "missing_field"),
    ({"prompt": "p", "chosen": 3, "rejected": "r"}, "chosen",
     "expected a string or a list of chat messages, got int", "wrong_type"),
    ({"prompt": "p", "chosen": "same", "rejected": "same"}, "rejected",
     "identical to 'chosen'", "identical_responses"),
    ({"prompt": "p", "chosen": "return a+b", "rejected": " return a + b\n"}, "rejected",
     "differs from 'chosen' only in whitespace", "whitespace_only_difference"),
    ({"prompt": USER, "chosen": A, "rejected": [{"role": "assistant", "content": "Hello. "}]},
     "rejected", "differs from 'chosen' only in whitespace", "whitespace_only_difference"),
    ({"prompt": "p", "chosen": "c", "rejected": "r", "margin": "big"}, "margin",
     "expected a number, got str", "wrong_type"),
    ({"prompt": "p", "chosen": "c", "rejected": "r", "score_chosen": 1.0}, "score_rejected",
     "missing while its partner score is given", "missing_field"),
    ({"prompt": USER, "chosen": "Hello.", "rejected": B}, "chosen",
     "is a plain string but 'prompt' is a message list", "wrong_type"),
    ({"prompt": USER, "chosen": [{"content": "x"}], "rejected": B}, "chosen",
     "message 1 has no 'role'", "bad_message"),
    ({"prompt": USER, "chosen": [{"role": "assistant"}], "rejected": B}, "chosen",
     "message 1 has no 'content'", "bad_message"),
    ({"prompt": [{"role": "human", "content": "x"}], "chosen": A, "rejected": B}, "prompt",
     "message 1 has unknown role 'human'", "unknown_role"),
    ({"prompt": USER + A, "chosen": A, "rejected": B}, "prompt",
     "the prompt ends with an assistant message", "bad_message"),
    ({"prompt": USER, "chosen": USER, "rejected": B}, "chosen",
     "a response must start with an assistant message", "bad_message"),
    ({"prompt": USER, "chosen": ["hi"], "rejected": B}, "chosen", "message 1 is a str",
     "bad_message"),
    ({"prompt": USER, "chosen": [], "rejected": B}, "chosen", "empty message list",
     "empty_field"),
]


@pytest.mark.parametrize("row,field,problem,reason", BAD_ROWS)
def test_jsonl_errors_name_file_line_and_field(tmp_path, row, field, problem, reason):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_records(path, kind="pairwise")
    assert str(err.value).startswith(f"{path}, line 2, field '{field}': {problem}")
    assert err.value.reason == reason and err.value.field == field


def test_the_documented_example_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = [json.dumps(GOOD)] * 16 + [json.dumps({"prompt": "p", "chosen": "", "rejected": "r"})]
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        load_records("data.jsonl")
    assert str(err.value) == ("data.jsonl, line 17, field 'chosen': empty string; every pair "
                              "needs a non-empty chosen response")


UNPAIRED_AND_RANKED = [
    ({"prompt": "p", "completion": "c", "label": 1}, "unpaired", "label",
     "expected true or false, got int 1"),
    ({"prompt": "p", "completion": "c", "label": "yes"}, "unpaired", "label",
     "expected true or false, got str"),
    ({"prompt": "p", "completion": "c"}, "unpaired", "label", "missing; every unpaired row"),
    ({"prompt": "p", "completions": ["a"], "scores": [1]}, "ranked", "completions",
     "1 completion(s); a ranked row needs at least 2"),
    ({"prompt": "p", "completions": ["a", "b"], "scores": [1, "x"]}, "ranked", "scores[1]",
     "expected a number, got str"),
    ({"prompt": "p", "completions": ["a", "b"], "scores": [1, True]}, "ranked", "scores[1]",
     "expected a number, got bool"),
    ({"prompt": "p", "completions": ["a", "b", "c"], "scores": [1, 2]}, "ranked", "scores",
     "2 scores for 3 completions"),
    ({"prompt": "p", "completions": ["a", ""], "scores": [1, 2]}, "ranked", "completions[1]",
     "empty string"),
    ({"prompt": "p", "completions": "a,b", "scores": [1, 2]}, "ranked", "completions",
     "expected a list, got str"),
    ({"prompt": "p", "completions": ["a", "b"], "scores": [1, float("nan")]}, "ranked",
     "scores[1]", "expected a finite number"),
]


@pytest.mark.parametrize("row,kind,field,problem", UNPAIRED_AND_RANKED)
def test_unpaired_and_ranked_errors(row, kind, field, problem):
    with pytest.raises(DataError) as err:
        load_records([{"prompt": "ok", "completion": "fine", "label": True,
                       "completions": ["x", "y"], "scores": [0, 1]}, row], kind=kind)
    assert str(err.value).startswith(f"<rows>, row 1 (0-based), field '{field}': {problem}")


def test_malformed_json_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + '{"prompt": "p", "chosen": \n', encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_records(path)
    assert str(err.value).startswith(f"{path}, line 3: malformed JSON")
    assert err.value.reason == "malformed_json"


def test_a_json_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(GOOD) + "\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2: expected a JSON object, got list"):
        load_records(path)


def test_invalid_utf8_in_jsonl_names_line_and_field(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n"
                     + b'{"prompt": "p", "chosen": "caf\xe9", "rejected": "r"}\n')
    with pytest.raises(DataError) as err:
        load_records(path)
    assert str(err.value).startswith(f"{path}, line 2, field 'chosen': invalid UTF-8 (byte 0xe9")
    assert err.value.reason == "invalid_utf8"


def test_invalid_utf8_outside_a_string_in_jsonl(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"prompt": "p", \xff "chosen": "c", "rejected": "r"}\n')
    with pytest.raises(DataError, match=r"line 1: invalid UTF-8 \(byte 0xff at byte 16"):
        load_records(path)


def test_invalid_utf8_in_csv_names_line_and_field(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"prompt,chosen,rejected\np,c,r\np,c,\xff\xfe\n")
    with pytest.raises(DataError) as err:
        load_records(path)
    assert str(err.value).startswith(f"{path}, line 3, field 'rejected': invalid UTF-8 (byte 0xff")


def test_csv_row_with_the_wrong_number_of_cells(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("prompt,chosen,rejected\np,c\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2: 2 cells but the header has 3 columns"):
        load_records(path)


def test_parquet_errors_name_the_zero_based_row(tmp_path):
    path = tmp_path / "d.parquet"
    write_parquet([GOOD, GOOD, {"prompt": "p", "chosen": "c", "rejected": "c"}], path)
    with pytest.raises(DataError) as err:
        load_records(path)
    assert str(err.value).startswith(f"{path}, row 2 (0-based), field 'rejected': identical")


def test_datasets_errors_name_the_zero_based_row():
    import datasets

    ds = datasets.Dataset.from_list([{"prompt": "p", "completion": "c", "label": True},
                                     {"prompt": "", "completion": "c", "label": False}])
    with pytest.raises(DataError, match=r"<Dataset>, row 1 \(0-based\), field 'prompt': empty"):
        load_records(ds)


def test_skip_mode_counts_every_reason_and_logs_a_warning(tmp_path, caplog):
    path = tmp_path / "d.jsonl"
    rows = [json.dumps(GOOD), json.dumps({"prompt": "p", "chosen": "", "rejected": "r"}),
            '{"broken', json.dumps({"prompt": "p", "chosen": "x", "rejected": "x"}),
            json.dumps({"prompt": "p", "chosen": "", "rejected": "r"}), json.dumps(GOOD)]
    path.write_bytes(("\n".join(rows) + "\n").encode() + b'{"prompt": "\xff"}\n')
    with caplog.at_level(logging.WARNING, logger="prefalign.data"):
        records, report = load_records(path, on_error="skip")
    assert len(records) == 2 and report.rows == 7 and report.loaded == 2
    assert report.skipped == {"empty_field": 2, "malformed_json": 1, "identical_responses": 1,
                              "invalid_utf8": 1}
    assert report.n_skipped == 5 and len(report.problems) == 5
    assert report.problems[0].startswith(f"{path}, line 2, field 'chosen'")
    assert "skipped 5" in report.summary() and "empty_field: 2" in report.summary()
    assert any("skipped 5 of 7 rows" in r.getMessage() for r in caplog.records)


def test_on_error_must_be_raise_or_skip():
    with pytest.raises(ValueError, match="on_error"):
        load_records([GOOD], on_error="ignore")


def test_records_built_in_python_are_checked_the_same_way():
    with pytest.raises(DataError, match=r"record, field 'chosen': empty string"):
        validate_record(PairRecord("p", "", "r"))
    clean = validate_record(PairRecord(USER, [{**A[0], "name": None}], B))
    assert clean.chosen == A  # None-valued keys (Arrow's filler) are dropped


def test_whitespace_only_pairs_are_skipped_and_counted_like_identical_ones(tmp_path):
    path = tmp_path / "data.jsonl"
    rows = [GOOD, {"prompt": "p", "chosen": "a  b", "rejected": "a b"},
            {"prompt": "p", "chosen": "same", "rejected": "same"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    records, report = load_records(path, on_error="skip")
    assert len(records) == 1
    assert report.skipped == {"whitespace_only_difference": 1, "identical_responses": 1}
    records, report = load_records(path, on_error="skip", keep_whitespace_variants=True)
    assert len(records) == 2 and report.skipped == {"identical_responses": 1}


@pytest.mark.parametrize("text, problem", [
    ('{"prompt": "p", "chosen": "c"\n',
     "Expecting ',' delimiter at the end of the line (column 30)"),
    ('{"prompt": "p", "chosen": "c",}\r\n', "Expecting property name enclosed in double quotes "
                                          "at column 31"),
    ('{\n', "Expecting property name enclosed in double quotes at the end of the line (column 2)"),
])
def test_a_json_line_error_gives_the_column_on_that_line(tmp_path, text, problem):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + text, encoding="utf-8", newline="")
    with pytest.raises(DataError) as err:
        load_records(path)
    assert str(err.value) == f"{path}, line 2: malformed JSON: {problem}"


def test_a_json_file_holding_one_object_says_so(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps(GOOD, indent=2), encoding="utf-8")
    with pytest.raises(DataError, match=r"data.json: holds one JSON object over several lines, "
                                        r"not rows; write a list of row objects"):
        load_records(path)
    path.write_text('{\n  "prompt": "p",\n  "chosen" "c"\n}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"data.json: malformed JSON at line 3, column 12: "
                                        r"Expecting ':' delimiter"):
        load_records(path)
    # one object on one line is a JSON-lines file of one row; a BOM is allowed
    path.write_text("\ufeff" + json.dumps(GOOD) + "\n", encoding="utf-8")
    assert len(load_records(path)[0]) == 1
    path.write_text("\ufeff" + json.dumps([GOOD, GOOD]), encoding="utf-8")
    assert len(load_records(path)[0]) == 2
