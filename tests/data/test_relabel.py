"""Reward-augmented relabeling: two score-conditioned pairs per scored pair, the sides swapped
in the second, stale per-side columns dropped, pairs without scores refused by row."""

import json

import pytest

from prefalign.cli import main
from prefalign.data import load_records


def test_relabel_through_the_cli(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in (
        {"prompt": "q", "chosen": "good", "rejected": "bad", "score_chosen": 0.9,
         "score_rejected": 0.25, "system": "be brief", "strength": 0.8, "chosen_model": "a",
         "topic": "math"},
        {"prompt": "r", "chosen": "x", "rejected": "y", "score_chosen": 1, "score_rejected": 1})))
    out = tmp_path / "o.jsonl"
    assert main(["data", "relabel", "--data", str(data), "--output", str(out)]) == 0
    assert "wrote 2 score-conditioned pairs" in capsys.readouterr().out
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["chosen"], r["rejected"], r["system"]) for r in rows] == [
        ("good", "bad", "be brief\n\nWrite a response whose quality score is 0.90."),
        ("bad", "good", "be brief\n\nWrite a response whose quality score is 0.25.")]
    assert [(r["target_score"], r["relabeled_from"], r["topic"]) for r in rows] == [
        (0.9, 0, "math"), (0.25, 0, "math")]
    assert all("strength" not in r and "chosen_model" not in r and "score_chosen" not in r
               for r in rows)
    records, _ = load_records(str(out))  # what training reads
    assert len(records) == 2
    unscored = tmp_path / "u.jsonl"
    unscored.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    assert main(["data", "relabel", "--data", str(unscored), "--output",
                 str(tmp_path / "x.jsonl")]) == 2
    assert "u.jsonl, line 1, field 'score_chosen'" in capsys.readouterr().err


def test_a_template_needs_the_score():
    from prefalign.data.relabel import reward_augment

    with pytest.raises(ValueError, match=r"needs \{score\}"):
        reward_augment([], template="be good")


def test_the_missing_score_is_named():
    from prefalign.data.errors import DataError
    from prefalign.data.records import PairRecord
    from prefalign.data.relabel import reward_augment

    with pytest.raises(DataError, match="field 'score_rejected'"):
        reward_augment([PairRecord("q", "a", "b", score_chosen=1.0)])
