"""TR-DPO reference updates: soft and hard updates by hand, a hard update every step keeping
the policy at its reference (every step's DPO loss is log 2), the reference saved with
checkpoints and resumed exactly, and the combinations that cannot work refused."""

import json
import math
import shutil

import pytest
import torch

from prefalign.engine.reference import FrozenReference
from prefalign.train import TrainConfig, train


def test_soft_and_hard_updates_by_hand():
    ref, policy = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor([[1.0, 2.0]]))
        policy.weight.copy_(torch.tensor([[3.0, -2.0]]))
    frozen = FrozenReference(ref)
    frozen.update(policy, 0.25)  # 0.25·θ + 0.75·θ_ref
    assert ref.weight.tolist() == [[1.5, 1.0]]
    frozen.update(policy, 1.0)
    assert ref.weight.tolist() == [[3.0, -2.0]] and torch.equal(ref.bias, policy.bias)
    assert not ref.weight.requires_grad
    with pytest.raises(ValueError, match="different parameters"):
        frozen.update(torch.nn.Linear(3, 1, bias=False), 0.5)


def _cfg(model, data, out, tmp_path, **kw):
    return TrainConfig(**{"model": str(model), "data": str(data), "output": str(out),
                          "batch_size": 4, "lr": 5e-2, "max_steps": 4, "seed": 3,
                          "progress": False, "cache_dir": str(tmp_path / "cache"), **kw})


def _losses(out):
    return [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_hard_update_every_step_keeps_the_reference_at_the_policy(tiny_model_dir, pair_file,
                                                                     tmp_path):
    model = tiny_model_dir("llama")
    train(_cfg(model, pair_file, tmp_path / "hard", tmp_path, ref_update="hard",
               ref_update_steps=1))
    assert _losses(tmp_path / "hard") == pytest.approx([math.log(2)] * 4, abs=1e-6)
    # a fixed reference moves the loss away from log 2 after step 1
    train(_cfg(model, pair_file, tmp_path / "fixed", tmp_path))
    assert _losses(tmp_path / "fixed")[1] != pytest.approx(math.log(2), abs=1e-4)


def test_a_moving_reference_resumes_exactly(tiny_model_dir, pair_file, tmp_path):
    """A run with soft updates stopped after its step-2 checkpoint (the folder as a crash
    leaves it) resumes with the reference of step 2, not the starting model."""
    model = tiny_model_dir("llama")
    kw = dict(ref_update="soft", ref_update_steps=1, ref_update_alpha=0.5, save_steps=2)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train(_cfg(model, pair_file, whole, tmp_path, **kw))
    assert (whole / "checkpoints" / "step-2" / "reference.safetensors").exists()
    shutil.copytree(whole, cut)
    record = json.loads((cut / "run.json").read_text())
    (cut / "run.json").write_text(json.dumps({**record, "status": "running"}))
    (cut / "metrics.jsonl").write_text("".join(
        (whole / "metrics.jsonl").read_text().splitlines(True)[:2]))
    shutil.rmtree(cut / "model")
    train(_cfg(model, pair_file, cut, tmp_path, **kw))
    assert _losses(cut) == pytest.approx(_losses(whole), rel=1e-6)


def test_reference_updates_that_cannot_work_are_refused(tiny_model_dir, pair_file, tmp_path):
    model = tiny_model_dir("llama")
    for kw, message in (({"reference": "cache"}, "cannot follow"),
                        ({"lora": True}, "with LoRA the reference is the base model"),
                        ({"objective": "simpo"}, "has no reference to update")):
        with pytest.raises(ValueError, match=message):
            train(_cfg(model, pair_file, tmp_path / "x", tmp_path, ref_update="soft", **kw))
    assert not (tmp_path / "x" / "model").exists()


def test_a_reference_of_another_architecture_is_refused_before_training(tiny_model_dir,
                                                                        pair_file, tmp_path):
    """The parameters are compared when the run starts, not at the first update."""
    with pytest.raises(ValueError, match="different parameters"):
        train(_cfg(tiny_model_dir("llama"), pair_file, tmp_path / "x", tmp_path,
                   ref_update="soft", ref_update_steps=1000,
                   ref_model=str(tiny_model_dir("llama", layers=3))))
    assert not (tmp_path / "x" / "metrics.jsonl").exists() or \
        not (tmp_path / "x" / "metrics.jsonl").read_text()
