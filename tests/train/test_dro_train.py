"""DRO through `prefalign train` on thumbs-up/down rows: step 1 equal to the objective on a
plain forward (ρ = 0, V = 0), the value head learning at its own rate and resumed exactly from
a checkpoint, a reward column read where the data has one, and the saved model without the
head."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from prefalign.data import load_records, tokenize_records
from prefalign.engine.forward import plain_sequence_logps
from prefalign.train import TrainConfig, Trainer, train
from prefalign.train.batches import BatchPlan



def _cfg(model, data, out, tmp_path, **kw):
    return TrainConfig(**{"model": str(model), "data": str(data), "output": str(out),
                          "objective": "dro", "batch_size": 4, "max_steps": 4, "seed": 2,
                          "lr": 1e-3, "progress": False, "cache_dir": str(tmp_path / "cache"),
                          **kw})


def _lines(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def _first_step_hand(model, data, seed, rewards_of):
    tok = AutoTokenizer.from_pretrained(model)
    records, _ = load_records(data)
    examples, _ = tokenize_records(records, tok)
    picked = BatchPlan(len(examples), 4, 1, 1, seed).step_examples(0)
    with torch.no_grad():
        logps = plain_sequence_logps(AutoModelForCausalLM.from_pretrained(model),
                                     [examples[i] for i in picked])[:, 0].double()
    r = torch.tensor([rewards_of(records[examples[i].index]) for i in picked], dtype=torch.float64)
    # ρ = 0 and V = 0 before the first update: −r·log π + ½·r²
    return float((-r * logps + 0.5 * r ** 2).mean()), float((0.5 * r ** 2).mean())


def test_dro_trains_from_labels_and_resumes_its_value_head(tiny_model_dir, unpaired_file,
                                                           tmp_path, monkeypatch):
    model = tiny_model_dir("llama")
    whole = tmp_path / "whole"
    train(_cfg(model, unpaired_file, whole, tmp_path, save_steps=2))
    lines = _lines(whole)
    loss, value = _first_step_hand(model, unpaired_file, 2, lambda rec: 1.0 if rec.label else 0.0)
    assert lines[0]["loss"] == pytest.approx(loss, rel=1e-5)
    assert lines[0]["loss/value"] == pytest.approx(value, rel=1e-5)
    # the value head moved at value_lr: the value loss falls from its V = 0 start
    assert lines[-1]["loss/value"] < lines[0]["loss/value"]
    saved = load_file(str(whole / "model" / "model.safetensors"))
    assert not any("value_head" in k for k in saved)

    original = Trainer._run_step

    def stop_at_three(self):
        if self.step == 3:
            raise KeyboardInterrupt("simulated")
        return original(self)

    monkeypatch.setattr(Trainer, "_run_step", stop_at_three)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(model, unpaired_file, tmp_path / "cut", tmp_path, save_steps=2))
    monkeypatch.setattr(Trainer, "_run_step", original)
    train(_cfg(model, unpaired_file, tmp_path / "cut", tmp_path, save_steps=2))
    resumed = _lines(tmp_path / "cut")
    assert [m["loss/value"] for m in resumed] == pytest.approx(
        [m["loss/value"] for m in lines], rel=1e-6, abs=1e-8)


def test_dro_reads_a_reward_column(tiny_model_dir, tmp_path):
    model = tiny_model_dir("llama")
    rows = [{"prompt": f"{i}+1=", "completion": str(i + 1), "label": i % 3 != 0,
             "reward": 0.25 * i - 1.0} for i in range(8)]
    data = tmp_path / "rated.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    train(_cfg(model, data, tmp_path / "rated", tmp_path, max_steps=1))
    loss, _ = _first_step_hand(model, data, 2, lambda rec: rec.meta["reward"])
    assert _lines(tmp_path / "rated")[0]["loss"] == pytest.approx(loss, rel=1e-5)
    rows[3].pop("reward")
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="reward column, which every row needs"):
        train(_cfg(model, data, tmp_path / "partial", tmp_path, max_steps=1))
