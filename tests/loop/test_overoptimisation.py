"""The over-optimisation curve: a run's checkpoints exported one by one as Hugging Face models,
sampled with the same seed; KL 0 at the start, the final point the run's own model; gold and
proxy scores on the same samples; curve.json and curve.png through the CLI."""

import json
from pathlib import Path

import pytest
import torch

from prefalign.cli import main
from prefalign.train import TrainConfig, train
from prefalign.train.checkpoint import CheckpointError, export_checkpoint


def test_a_run_curve_through_the_cli(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "synth"))
    model = tiny_model_dir("llama")
    rows = [{"prompt": f"{i}+{i}=", "chosen": str(2 * i), "rejected": str(2 * i + 1)}
            for i in range(1, 5)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    train(TrainConfig(model=str(model), data=str(data), output=str(run), max_steps=4,
                      save_steps=2, batch_size=4, lr=5e-2, progress=False,
                      cache_dir=str(tmp_path / "cache")))
    # a checkpoint exported is the model the run had at that step
    exported = export_checkpoint(run / "checkpoints" / "step-2", str(model), tmp_path / "e")
    from safetensors.torch import load_file

    weights = load_file(str(exported / "model.safetensors"))
    stored = load_file(str(run / "checkpoints" / "step-2" / "model.safetensors"))
    assert all(torch.equal(weights[k.removeprefix("model.")], v) for k, v in stored.items()
               if k.removeprefix("model.") in weights)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": r["prompt"]}) + "\n" for r in rows))
    out = tmp_path / "curve"
    assert main(["curve", "--run", str(run), "--prompts", str(prompts), "--scorer",
                 "verifier:synth_helpers:digit_share", "--proxy", "verifier:synth_helpers:"
                 "digit_share", "--num-samples", "2", "--max-new-tokens", "4", "--output",
                 str(out), "--device", "cpu", "--kl", "k1"]) == 0
    curve = json.loads((out / "curve.json").read_text())
    points = curve["points"]
    assert curve["kl"] == "k1" and all(p["kl"] == p["kl_k1"] for p in points)
    assert points[-1]["kl_k3"] >= 0 and points[-1]["kl_k3"] != points[-1]["kl_k1"]
    assert [p["step"] for p in points] == [0, 2, 4]  # the start, the checkpoint, the final model
    assert points[0]["kl"] == pytest.approx(0.0, abs=1e-6) and points[-1]["kl"] > 0
    assert all(p["gold"] == p["proxy"] for p in points)
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_an_unknown_kl_estimator_is_refused_before_any_work(tmp_path, capsys):
    from prefalign.loop.overoptimisation import overoptimisation_curve

    with pytest.raises(ValueError, match="one of k1, k3"):
        overoptimisation_curve(tmp_path / "nowhere", tmp_path / "p.jsonl", scorer="x", kl="k2")
    assert main(["curve", "--run", "r", "--prompts", "p", "--scorer", "s", "--kl", "k2"]) == 2
    assert "--kl" in capsys.readouterr().err  # the flag is refused, not the missing run


def test_what_cannot_be_exported_is_refused(tmp_path):
    (tmp_path / "ck").mkdir()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        export_checkpoint(tmp_path / "ck", "/nowhere", tmp_path / "out")
