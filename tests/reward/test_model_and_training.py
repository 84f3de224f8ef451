"""Scalar-head reward models from tiny causal LMs: pooling, scoring, training, CLI."""

import argparse
import json
import random

import pytest
import torch

from prefalign.reward import (RewardModel, evaluate_reward_model, load_reward_model, rewards_of,
                              train_reward_model)
from prefalign.cli.reward import add_rm_parser


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _separable(path, n, seed):
    """Chosen responses use letters a/b, rejected x/y: separable from the response alone."""
    rnd = random.Random(seed)
    rows = [{"prompt": f"q{rnd.randint(0, 99)}:",
             "chosen": "".join(rnd.choice("ab") for _ in range(rnd.randint(3, 7))),
             "rejected": "".join(rnd.choice("xy") for _ in range(rnd.randint(3, 7)))}
            for _ in range(n)]
    return _write(path, rows)


def test_pad_token_is_set_and_pooling_reads_the_last_real_token(tiny_model_dir):
    torch.manual_seed(0)
    model, tok = load_reward_model(tiny_model_dir("qwen2"))
    assert model.config.pad_token_id == tok.pad_token_id is not None
    short, long = [5, 6, 7], [5, 6, 7, 8, 9, 10, 11]
    with torch.no_grad():
        alone = rewards_of(model, [short])
        batched = rewards_of(model, [short, long])       # short is right-padded by 4
        hidden = model.model(input_ids=torch.tensor([short])).last_hidden_state
        by_hand = model.score(hidden[0, -1]).squeeze()
    assert batched[0].item() == pytest.approx(alone[0].item(), abs=1e-5)
    assert alone[0].item() == pytest.approx(by_hand.item(), abs=1e-5)


def test_score_texts_in_batches_equals_one_by_one(tiny_model_dir):
    torch.manual_seed(0)
    rm = RewardModel(*load_reward_model(tiny_model_dir("llama")))
    texts = ["a", "hello there", "abc def ghi", "z"]
    batched = rm.score(texts, batch_size=3)
    single = [rm.score([t])[0] for t in texts]
    assert batched == pytest.approx(single, abs=1e-5)


def test_training_on_separable_pairs_beats_chance_on_held_out_pairs(tiny_model_dir, tmp_path):
    train = _separable(tmp_path / "train.jsonl", 24, seed=0)
    test = _separable(tmp_path / "test.jsonl", 16, seed=1)
    summary = train_reward_model(tiny_model_dir("llama"), train, tmp_path / "rm", lr=1e-3,
                                 max_steps=8, batch_size=8, seed=0)
    lines = [json.loads(l) for l in (tmp_path / "rm" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == summary["steps"] == 8
    assert lines[-1]["loss"] < lines[0]["loss"]
    result = evaluate_reward_model(tmp_path / "rm", test)
    assert result["accuracy"] >= 0.9 and result["margin"] > 0 and result["pairs"] == 16
    assert (tmp_path / "rm" / "model.safetensors").is_file()


def test_margin_column_raises_the_loss(tiny_model_dir, tmp_path):
    rows = [{"prompt": "q:", "chosen": "ab", "rejected": "xy", "margin": 5.0}] * 4
    a = train_reward_model(tiny_model_dir("llama"), _write(tmp_path / "m.jsonl", rows),
                           tmp_path / "a", lr=1e-12, max_steps=1, batch_size=4, seed=0)
    b = train_reward_model(tiny_model_dir("llama"), tmp_path / "m.jsonl", tmp_path / "b",
                           lr=1e-12, max_steps=1, batch_size=4, seed=0, use_margin=False)
    assert a["final"]["loss"] > b["final"]["loss"]


def test_non_pairwise_data_is_refused_with_the_reason(tiny_model_dir, tmp_path):
    path = _write(tmp_path / "u.jsonl", [{"prompt": "p", "completion": "c", "label": True}])
    with pytest.raises(ValueError, match="no pairwise records"):
        train_reward_model(tiny_model_dir("llama"), path, tmp_path / "x", max_steps=1)


def test_rm_cli_train_and_eval(tiny_model_dir, tmp_path, capsys):
    data = _separable(tmp_path / "d.jsonl", 8, seed=2)
    parser = argparse.ArgumentParser()
    add_rm_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["rm", "train", "--model", str(tiny_model_dir("llama")), "--data",
                              str(data), "--output", str(tmp_path / "rm"), "--max-steps", "2",
                              "--batch-size", "4", "--lr", "1e-3",
                              "--center-rewards-coefficient", "0.01"])
    assert args.func(args) == 0
    args = parser.parse_args(["rm", "eval", "--model", str(tmp_path / "rm"), "--data", str(data),
                              "--output", str(tmp_path / "r.json"),
                              "--plot", str(tmp_path / "reliability.png")])
    assert args.func(args) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert 0 <= result["accuracy"] <= 1
    calibration = result["calibration"]
    assert sum(b["n"] for b in calibration["reliability"]) == result["pairs"] == \
        sum(b["n"] for b in calibration["accuracy_by_margin"])
    assert 0 <= calibration["ece"] <= 0.5
    assert (tmp_path / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
