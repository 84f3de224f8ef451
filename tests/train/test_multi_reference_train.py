"""MRPO through `prefalign train`: two reference models given as --ref-model twice, each in the
reference cache, the first step's loss equal to the objective on plain forwards of the three
models, and the counts that cannot work refused before any work."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from prefalign.cli import main
from prefalign.data import load_records, tokenize_records
from prefalign.engine.forward import plain_sequence_logps
from prefalign.objectives import compute
from prefalign.train import TrainConfig, train
from prefalign.train.batches import BatchPlan


def _cfg(policy, refs, data, out, tmp_path, **kw):
    return TrainConfig(**{"model": str(policy), "ref_model": [str(r) for r in refs],
                          "data": str(data), "output": str(out), "objective": "mrpo",
                          "batch_size": 4, "max_steps": 2, "seed": 1, "lr": 1e-3,
                          "progress": False, "cache_dir": str(tmp_path / "cache"), **kw})


def test_mrpo_step_one_equals_plain_forwards(tiny_model_dir, pair_file, tmp_path):
    policy, other = tiny_model_dir("llama"), tiny_model_dir("llama", seed=7)
    out = tmp_path / "run"
    cfg = _cfg(policy, [policy, other], pair_file, out, tmp_path,
               objective_args={"beta": 0.5, "mrpo_eta": 0.2})
    train(cfg)
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    # both references went through the cache: one file per reference model
    assert len(list((tmp_path / "cache").glob("ref-logps-*.safetensors"))) == 2

    tok = AutoTokenizer.from_pretrained(policy)
    records, _ = load_records(pair_file)
    examples, _ = tokenize_records(records, tok)
    picked = [examples[i] for i in BatchPlan(len(examples), 4, 1, 1, cfg.seed).step_examples(0)]
    with torch.no_grad():
        start = plain_sequence_logps(AutoModelForCausalLM.from_pretrained(policy), picked).double()
        theirs = plain_sequence_logps(AutoModelForCausalLM.from_pretrained(other), picked).double()
    expected = compute("mrpo", start[:, 0], start[:, 1], start[:, 0], start[:, 1], beta=0.5,
                       mrpo_eta=0.2, ref_extra_chosen_logps=theirs[:, :1],
                       ref_extra_rejected_logps=theirs[:, 1:2]).mean()
    assert first["loss"] == pytest.approx(float(expected), abs=1e-5)
    # the other reference matters: DPO against the policy alone would be log 2
    assert abs(first["loss"] - float(torch.log(torch.tensor(2.0)))) > 1e-4


def test_the_cli_takes_ref_model_twice(tiny_model_dir, pair_file, tmp_path):
    policy, other = tiny_model_dir("llama"), tiny_model_dir("llama", seed=7)
    rc = main(["train", "--model", str(policy), "--data", str(pair_file), "--objective", "mrpo",
               "--ref-model", str(policy), "--ref-model", str(other), "--max-steps", "1",
               "--batch-size", "4", "--output", str(tmp_path / "cli"), "--no-progress",
               "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    recorded = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert recorded["ref_model"] == [str(policy), str(other)]


def test_reference_counts_that_cannot_work_are_refused(tiny_model_dir, pair_file, tmp_path):
    policy, other = tiny_model_dir("llama"), tiny_model_dir("llama", seed=7)
    with pytest.raises(ValueError, match="combines two or more reference models"):
        train(_cfg(policy, [other], pair_file, tmp_path / "one", tmp_path))
    with pytest.raises(ValueError, match="given 2 times, but objective 'sigmoid'"):
        train(_cfg(policy, [policy, other], pair_file, tmp_path / "two", tmp_path,
                   objective="sigmoid"))
    with pytest.raises(ValueError, match="--ref-update"):
        train(_cfg(policy, [policy, other], pair_file, tmp_path / "upd", tmp_path,
                   ref_update="hard"))
