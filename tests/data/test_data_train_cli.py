"""`prefalign train` on data-layer edge cases, end to end on a tiny model: implicit-prompt rows
train unchanged; bad rows fail as one line naming file, line and field, or are skipped."""

from __future__ import annotations

import json

import pytest

from prefalign.cli import main


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def train_cli(model, data, out, *flags):
    return main(["train", "--model", str(model), "--data", str(data), "--output", str(out),
                 "--max-steps", "1", "--batch-size", "2", "--no-progress",
                 "--cache-dir", str(out.parent / "cache"), *flags])


def hh_rows(n=4):
    return [{"chosen": f"\n\nHuman: {i}+1?\n\nAssistant: It is {i + 1}.",
             "rejected": f"\n\nHuman: {i}+1?\n\nAssistant: It is {i + 2}, I think."}
            for i in range(n)]


def test_implicit_prompt_hh_rows_train_unchanged(tiny_model_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "hh.jsonl", hh_rows())
    assert train_cli(tiny_model_dir("llama"), data, tmp_path / "run") == 0
    assert "trained 1 steps" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])["pairs"] == 2


def test_implicit_prompt_conversations_train_unchanged(tiny_model_dir, tmp_path):
    user = {"role": "user", "content": "Name a pet."}
    rows = [{"chosen": [user, {"role": "assistant", "content": f"A cat, {i}."}],
             "rejected": [user, {"role": "assistant", "content": f"A car {i}."}]} for i in range(4)]
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    assert train_cli(tiny_model_dir("llama"), data, tmp_path / "run") == 0
