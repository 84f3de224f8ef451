"""JSON nested past the decoder's limit is a row error like any other; messages say "at" once."""

import json

import pytest

from prefalign.data import DataError, load_records

ROW = {"prompt": "a", "chosen": "b", "rejected": "c"}


def test_deeply_nested_row_is_a_row_error_and_skip_honours_it(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + '{"prompt": ' + "[" * 100000 + "}\n"
                    + json.dumps(ROW | {"prompt": "a2"}) + "\n")
    with pytest.raises(DataError, match=r"deep.jsonl, line 2: .*nested too deeply"):
        load_records(path)
    records, _ = load_records(path, on_error="skip")
    assert [r.prompt for r in records] == ["a", "a2"]


def test_deeply_nested_json_document_is_a_data_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100000 + "\n")
    with pytest.raises(DataError, match="nested too deeply"):
        load_records(path)


def test_unterminated_string_message_says_at_once(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_text('{"prompt": "a}\n')
    with pytest.raises(DataError) as info:
        load_records(path)
    assert "at at" not in str(info.value)
    assert "Unterminated string starting at column 12" in str(info.value)
