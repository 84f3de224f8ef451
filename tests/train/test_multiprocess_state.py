"""The objective's running statistics are reduced over processes: two CPU processes (gloo,
through torchrun) give the losses of one process at the same global batch for bco_pair with
its running-mean reward shift, whose δ depends on every process's rewards."""

import json

import pytest

from launch_helpers import run_cli


@pytest.mark.slow
def test_running_statistics_are_reduced_over_processes(tiny_model_dir, pair_file, tmp_path):
    model = str(tiny_model_dir("llama"))
    common = ["--model", model, "--data", str(pair_file), "--objective", "bco_pair", "--lr", "5e-2",
              "--set", "reward_shift=running_mean", "--max-steps", "3", "--seed", "5", "--no-progress",
              "--cache-dir", str(tmp_path / "cache")]
    run_cli(common + ["--batch-size", "4", "--output", str(tmp_path / "one")], 1)
    run_cli(common + ["--batch-size", "2", "--output", str(tmp_path / "two")], 2)
    read = lambda d: [json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
    one, two = read("one"), read("two")
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-6)
    assert one[-1]["loss"] != pytest.approx(one[0]["loss"], rel=1e-6), "training moved the loss"
