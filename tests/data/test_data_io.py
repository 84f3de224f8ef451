"""Readers and writers: every format loads the same records; writes are atomic; meta survives."""

from __future__ import annotations

import csv
import json
import os

import pytest

from prefalign.data import (
    DataError, PairRecord, RankedRecord, SFTRecord, UnpairedRecord, detect_kind, load_records,
    save_records, write_jsonl, write_parquet)

CHAT_PROMPT = [{"role": "user", "content": "What is 2+2?"}]
PAIR_ROWS = [
    {"id": "a", "prompt": "Say hi.", "chosen": "Hi!", "rejected": "No.", "margin": 1.5},
    {"id": "b", "prompt": "Count to 3.", "chosen": "1 2 3", "rejected": "1 2",
     "score_chosen": 0.9, "score_rejected": 0.2},
]


def write_lines(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_reader_loads_pairs_and_keeps_extra_columns_in_meta(tmp_path):
    records, report = load_records(write_lines(tmp_path / "d.jsonl", PAIR_ROWS))
    assert report.kind == "pairwise" and report.rows == report.loaded == 2
    assert records[0] == PairRecord("Say hi.", "Hi!", "No.", margin=1.5, meta={"id": "a"})
    assert (records[1].score_chosen, records[1].score_rejected) == (0.9, 0.2)


def test_json_array_file_loads_with_zero_based_rows(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(PAIR_ROWS + [{"prompt": "x", "chosen": "", "rejected": "y"}]))
    with pytest.raises(DataError, match=r"d\.json, row 2 \(0-based\), field 'chosen'"):
        load_records(path)


def test_parquet_and_jsonl_writers_round_trip(tmp_path):
    records, _ = load_records(PAIR_ROWS)
    for name in ("out.parquet", "out.jsonl"):
        save_records(records, tmp_path / name)
        again, report = load_records(tmp_path / name)
        assert again == records and report.loaded == 2
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_conversational_pairs_round_trip_through_parquet(tmp_path):
    rows = [{"prompt": CHAT_PROMPT, "chosen": [{"role": "assistant", "content": "4"}],
             "rejected": [{"role": "assistant", "content": "5"}]}]
    records, _ = load_records(rows)
    write_parquet(records, tmp_path / "c.parquet")
    again, _ = load_records(tmp_path / "c.parquet")
    assert again == records


def test_parquet_writer_explains_mixed_formats(tmp_path):
    rows = [{"prompt": "plain", "chosen": "a", "rejected": "b"},
            {"prompt": CHAT_PROMPT, "chosen": [{"role": "assistant", "content": "4"}],
             "rejected": [{"role": "assistant", "content": "5"}]}]
    records, _ = load_records(rows)
    with pytest.raises(DataError, match="need JSONL"):
        write_parquet(records, tmp_path / "m.parquet")
    assert not (tmp_path / "m.parquet").exists()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = write_jsonl([{"prompt": "p", "completion": "c"}], tmp_path / "keep.jsonl")
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_jsonl([{"prompt": "p", "completion": "c"}, {"prompt": object()}], path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.jsonl"]


def test_csv_reader_parses_labels_message_lists_and_multiline_cells(tmp_path):
    path = tmp_path / "u.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "completion", "label", "source"])
        w.writerow(["Say\nhi.", "Hi!", "true", "web"])
        w.writerow([json.dumps(CHAT_PROMPT), json.dumps([{"role": "assistant", "content": "4"}]),
                    "False", "book"])
        w.writerow(["p", "c", "maybe", "x"])
    with pytest.raises(DataError) as err:
        load_records(path)
    # the third data row starts on line 5: the header, a row spanning lines 2-3, then line 4
    assert str(err.value).startswith(f"{path}, line 5, field 'label': expected true or false")
    records, report = load_records(path, on_error="skip")
    assert records == [UnpairedRecord("Say\nhi.", "Hi!", True, meta={"source": "web"}),
                       UnpairedRecord(CHAT_PROMPT, [{"role": "assistant", "content": "4"}], False,
                                      meta={"source": "book"})]
    assert report.skipped == {"wrong_type": 1}


def test_csv_ranked_lists_are_json_cells(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('prompt,completions,scores\nq,"[""a"", ""b""]","[1, 0.5]"\n', encoding="utf-8")
    records, _ = load_records(path)
    assert records == [RankedRecord("q", ["a", "b"], [1.0, 0.5])]


def test_datasets_object_folder_and_split(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list(PAIR_ROWS)
    from_object, report = load_records(ds)
    assert report.source == "<Dataset>" and len(from_object) == 2
    ds.save_to_disk(str(tmp_path / "saved"))
    from_folder, _ = load_records(tmp_path / "saved")
    dd = datasets.DatasetDict({"train": ds, "test": ds.select([0])})
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match="choose one with split"):
        load_records(tmp_path / "dd")
    test_split, _ = load_records(tmp_path / "dd", split="test")
    # Arrow fills absent columns with None; those optional fields read back as absent
    assert from_folder == from_object
    assert test_split == from_object[:1]


def test_kind_detection_from_columns():
    assert detect_kind(["prompt", "chosen", "rejected"]) == "pairwise"
    assert detect_kind(["prompt", "completions", "scores"]) == "ranked"
    assert detect_kind(["prompt", "completion", "label"]) == "unpaired"
    assert detect_kind(["prompt", "completion"]) == "sft"
    with pytest.raises(DataError, match="cannot tell the data kind"):
        detect_kind(["prompt", "answer"])


def test_sft_records_and_explicit_kind():
    records, report = load_records([{"prompt": "p", "completion": "c"}])
    assert records == [SFTRecord("p", "c")] and report.kind == "sft"
    records, _ = load_records([{"prompt": "p", "completion": "c", "label": True}], kind="sft")
    assert records == [SFTRecord("p", "c", meta={"label": True})]
    with pytest.raises(DataError, match="false in SFT data"):
        load_records([{"prompt": "p", "completion": "c", "label": False}], kind="sft")


def test_implicit_prompt_is_the_shared_prefix_of_chosen_and_rejected():
    system = {"role": "system", "content": "Be brief."}
    user = {"role": "user", "content": "Capital of France?"}
    row = {"chosen": [system, user, {"role": "assistant", "content": "Paris."}],
           "rejected": [system, user, {"role": "assistant", "content": "Rome."}]}
    (record,), _ = load_records([row])
    assert record.prompt == [system, user]
    assert record.chosen == [{"role": "assistant", "content": "Paris."}]
    assert record.rejected == [{"role": "assistant", "content": "Rome."}]


def test_implicit_prompt_stops_before_a_shared_assistant_turn():
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    row = {"chosen": turns + [{"role": "user", "content": "c"}],
           "rejected": turns + [{"role": "user", "content": "d"}]}
    with pytest.raises(DataError, match="field 'chosen': a response must end with an assistant"):
        load_records([row])


def test_system_column_is_kept_and_may_not_duplicate_a_system_message():
    (record,), _ = load_records([{"prompt": "p", "chosen": "a", "rejected": "b", "system": "S"}])
    assert record.system == "S" and record.to_row()["system"] == "S"
    bad = {"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "u"}],
           "chosen": [{"role": "assistant", "content": "a"}],
           "rejected": [{"role": "assistant", "content": "b"}], "system": "T"}
    with pytest.raises(DataError, match="field 'system': given both"):
        load_records([bad])


def test_unsupported_suffix_and_missing_file(tmp_path):
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        load_records(tmp_path / "d.txt")
    with pytest.raises(FileNotFoundError):
        load_records(tmp_path / "nope.jsonl")


def test_a_device_or_pipe_is_refused_before_reading(tmp_path):
    """A data path that is /dev/zero (here through a .jsonl link) or a FIFO would be read
    forever (MemoryError) or block: refused with one line naming it."""
    from prefalign.data.prompts import read_prompt_rows

    link = tmp_path / "pairs.jsonl"
    link.symlink_to("/dev/zero")
    with pytest.raises(DataError, match=r"pairs.jsonl.*not a regular file"):
        load_records(link)
    fifo = tmp_path / "prompts.txt"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"prompts.txt.*not a regular file"):
        read_prompt_rows(fifo, strings=True)
    with pytest.raises(DataError, match="not a regular file"):
        read_prompt_rows(link)
