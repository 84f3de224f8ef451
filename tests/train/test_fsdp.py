"""FSDP2 through accelerate with the shipped examples/accelerate/fsdp.yaml: two CPU processes
over gloo give one process's per-step losses and final weights at the same global batch, with a
cached reference, a frozen reference model, LoRA and gradient accumulation; a checkpoint saved
sharded resumes exactly; the final model is saved in Hugging Face format from the shards; and
the run records what ran."""

import json

import pytest
import torch

from launch_helpers import FSDP_CONFIG, final_weights, metrics, run_cli


def _common(model, data, tmp_path, *extra):
    return ["--model", model, "--data", str(data), "--lr", "1e-2", "--seed", "5",
            "--no-progress", "--cache-dir", str(tmp_path / "cache"), *extra]


def _same_run(one, two, *, weights=True):
    a, b = metrics(one), metrics(two)
    assert len(a) == len(b) and [m["pairs"] for m in a] == [m["pairs"] for m in b]
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5, abs=1e-7)
        assert y["logps/chosen"] == pytest.approx(x["logps/chosen"], rel=1e-6)
        assert y["tokens"] == x["tokens"]
    assert a[-1]["loss"] != pytest.approx(a[0]["loss"], rel=1e-6), "training moved the loss"
    if weights:
        wa, wb = final_weights(one), final_weights(two)
        assert set(wa) == set(wb)
        for k in wa:
            assert torch.allclose(wa[k], wb[k], atol=5e-5), k


def _ran(out):
    return json.loads((out / "timings.json").read_text())["distributed"]


@pytest.mark.slow
def test_fsdp2_matches_one_process_with_the_cache_and_accumulation(tiny_model_dir, pair_file,
                                                                    tmp_path):
    common = _common(str(tiny_model_dir("llama")), pair_file, tmp_path, "--objective", "sigmoid",
                     "--max-steps", "3", "--grad-accum", "2")
    run_cli(common + ["--batch-size", "4", "--output", str(tmp_path / "one")], 1)
    run_cli(common + ["--batch-size", "2", "--output", str(tmp_path / "two")], 2,
            config=FSDP_CONFIG)
    _same_run(tmp_path / "one", tmp_path / "two")
    ran = _ran(tmp_path / "two")
    assert (ran["type"], ran["processes"], ran["backend"]) == ("FSDP2", 2, "gloo")
    assert ran["fsdp"]["state_dict_type"] == "SHARDED_STATE_DICT" and "fallbacks" not in ran
    assert _ran(tmp_path / "one")["type"] == "single process"


@pytest.mark.slow
def test_fsdp2_with_a_frozen_reference_model_and_with_lora(tiny_model_dir, pair_file, tmp_path):
    model = str(tiny_model_dir("llama"))
    for name, extra in (("frozen", ["--reference", "model", "--objective", "ipo"]),
                        ("lora", ["--lora", "--objective", "sigmoid"])):
        common = _common(model, pair_file, tmp_path, "--max-steps", "2", *extra)
        run_cli(common + ["--batch-size", "4", "--output", str(tmp_path / f"{name}-one")], 1)
        run_cli(common + ["--batch-size", "2", "--output", str(tmp_path / f"{name}-two")], 2,
                config=FSDP_CONFIG)
        # a LoRA run saves the adapter; its weights are compared through the metrics
        _same_run(tmp_path / f"{name}-one", tmp_path / f"{name}-two", weights=name != "lora")
        assert _ran(tmp_path / f"{name}-two")["type"] == "FSDP2"


@pytest.mark.slow
def test_a_sharded_checkpoint_resumes_exactly(tiny_model_dir, pair_file, tmp_path):
    """A run killed after its step-2 checkpoint (its folder as a crash leaves it: running,
    metrics of steps 1-2, no model) resumes from the sharded checkpoint to the same steps 3-4
    and final weights as the run that was not stopped; another process count is refused."""
    import shutil

    common = _common(str(tiny_model_dir("llama")), pair_file, tmp_path, "--objective", "sigmoid",
                     "--batch-size", "2", "--save-steps", "2", "--max-steps", "4")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run_cli(common + ["--output", str(whole)], 2, config=FSDP_CONFIG)
    assert [p.name for p in (whole / "checkpoints").iterdir()] == ["step-2"]
    shards = sorted(p.name for p in (whole / "checkpoints" / "step-2" / "pytorch_model_fsdp_0")
                    .glob("*.distcp"))
    assert shards == ["__0_0.distcp", "__1_0.distcp"]  # one shard per process
    shutil.copytree(whole, cut)
    record = json.loads((cut / "run.json").read_text())
    (cut / "run.json").write_text(json.dumps({**record, "status": "running"}))
    lines = (cut / "metrics.jsonl").read_text().splitlines(True)
    (cut / "metrics.jsonl").write_text("".join(lines[:2]))
    shutil.rmtree(cut / "model")
    (cut / "timings.json").unlink()
    refused = run_cli(common + ["--output", str(cut)], 1, check=False)
    assert refused.returncode != 0 and "processes" in refused.stderr
    run_cli(common + ["--output", str(cut)], 2, config=FSDP_CONFIG)
    _same_run(whole, cut)


def test_a_launch_that_falls_back_says_so(tiny_model_dir, pair_file, tmp_path, monkeypatch,
                                          caplog):
    """`accelerate launch --cpu --config_file fsdp.yaml` runs one process, unsharded, and the
    config's bf16 is not what --bf16 says: both are warned about and recorded."""
    from prefalign.train import TrainConfig, train

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    with caplog.at_level("WARNING", logger="prefalign.train.distributed"):
        train(TrainConfig(model=str(tiny_model_dir("llama")), data=str(pair_file),
                          output=str(tmp_path / "r"), max_steps=1, batch_size=2,
                          progress=False, cache_dir=str(tmp_path / "cache")))
    ran = _ran(tmp_path / "r")
    assert ran["type"] == "single process" and ran["mixed_precision"] == "no"
    assert ran["requested"] == {"processes": 1, "type": "FSDP2", "mixed_precision": "bf16"}
    assert ran["fallbacks"] == [
        "the launch asked for FSDP2; this run is single process: nothing is sharded",
        "the launch asked for mixed precision bf16; --bf16 decides here, and this run uses no"]
    assert [r.getMessage() for r in caplog.records] == ran["fallbacks"]


@pytest.mark.slow
def test_a_second_fsdp2_run_in_the_same_processes(tiny_model_dir, pair_file, tmp_path):
    """Two trainings in one launch (iterate's rounds, the demo's comparisons): the second is
    sharded as the first, not left with a stale state."""
    import os
    import subprocess
    import sys

    from launch_helpers import ROOT

    script = tmp_path / "two_runs.py"
    script.write_text(f"""
from prefalign.train import TrainConfig, train
for name in ("first", "second"):
    train(TrainConfig(model={str(tiny_model_dir("llama"))!r}, data={str(pair_file)!r},
                      output={str(tmp_path)!r} + "/" + name, max_steps=1, batch_size=2,
                      progress=False, cache_dir={str(tmp_path / "cache")!r}))
""")
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           str(FSDP_CONFIG), "--num_processes", "2", "--mixed_precision", "no",
                           str(script)], capture_output=True, text=True, env=env, timeout=600,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [_ran(tmp_path / n)["type"] for n in ("first", "second")] == ["FSDP2", "FSDP2"]
