"""Two CPU processes (gloo, through torchrun) give the losses of one process at the same global
batch, and split the reference pass between them."""

import json

import pytest
import torch

from launch_helpers import run_cli


@pytest.mark.slow
def test_two_processes_match_one_at_the_same_global_batch(tiny_model_dir, pair_file, tmp_path):
    model = str(tiny_model_dir("llama"))
    common = ["--model", model, "--data", str(pair_file), "--objective", "sigmoid", "--lr", "1e-2",
              "--max-steps", "3", "--seed", "5", "--no-progress", "--cache-dir", str(tmp_path / "cache")]
    run_cli(common + ["--batch-size", "4", "--output", str(tmp_path / "one")], 1)
    run_cli(common + ["--batch-size", "2", "--output", str(tmp_path / "two")], 2)
    read = lambda d: [json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
    one, two = read("one"), read("two")
    assert [m["pairs"] for m in two] == [4, 4, 4]
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-6)
        assert b["logps/chosen"] == pytest.approx(a["logps/chosen"], rel=1e-5)
        assert b["tokens"] == a["tokens"]
    assert one[-1]["loss"] != pytest.approx(one[0]["loss"], rel=1e-6), "training moved the loss"


@pytest.mark.slow
def test_sft_token_mean_over_two_processes_is_the_steps(tiny_model_dir, tmp_path):
    """SFT's batch token mean spans the step's processes too (each rank divides by the whole
    step's mean length, DDP averages): two processes give one process's losses."""
    rows = [{"prompt": f"{i}+{i}=", "completion": "x" * (1 + (5 * i) % 7)} for i in range(8)]
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["--model", str(tiny_model_dir("llama")), "--data", str(data), "--objective", "sft",
              "--lr", "1e-2", "--max-steps", "2", "--seed", "5", "--no-progress"]
    run_cli(common + ["--batch-size", "4", "--output", str(tmp_path / "one")], 1)
    run_cli(common + ["--batch-size", "2", "--output", str(tmp_path / "two")], 2)
    read = lambda d: [json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(read("one"), read("two")):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)


@pytest.mark.slow
def test_the_reference_pass_is_split_over_the_processes(tiny_model_dir, pair_file, tmp_path):
    """Two processes each compute half the reference log-probs and write one cache file: the
    same file name (key) and values as one process's, marked as computed by two."""
    from safetensors import safe_open

    model = str(tiny_model_dir("llama"))
    common = ["--model", model, "--data", str(pair_file), "--objective", "sigmoid",
              "--max-steps", "1", "--batch-size", "2", "--no-progress"]
    run_cli(common + ["--output", str(tmp_path / "one"), "--cache-dir", str(tmp_path / "c1")], 1)
    run_cli(common + ["--output", str(tmp_path / "two"), "--cache-dir", str(tmp_path / "c2")], 2)
    [one] = (tmp_path / "c1").glob("ref-logps-*.safetensors")
    [two] = (tmp_path / "c2").glob("ref-logps-*.safetensors")
    assert one.name == two.name
    with safe_open(str(one), "pt") as a, safe_open(str(two), "pt") as b:
        assert (a.metadata()["processes"], b.metadata()["processes"]) == ("1", "2")
        for name in ("logps", "token_logps"):
            x, y = a.get_tensor(name), b.get_tensor(name)
            assert x.shape == y.shape and torch.allclose(x, y, atol=1e-5), name
