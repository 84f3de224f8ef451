"""One pass per stage: a train config is checked once, the objective's hyperparameters are
resolved once per run, a step's plan (and an epoch's permutation) computed once, loaded records
validated once; and the reference cache knows a model by its contents, not by its path or
modification time."""

import os
import shutil

import torch

from prefalign.cli import main
from prefalign.engine.reference import CachedReference
from prefalign.train import TrainConfig, Trainer
from prefalign.train import batches
from prefalign.train.config import TrainConfig as Config


def _run_args(model, data, out, cache):
    return ["train", "--model", str(model), "--data", str(data), "--output", str(out),
            "--max-steps", "2", "--batch-size", "4", "--no-progress", "--cache-dir", str(cache),
            "--beta", "0.2"]


def test_the_cli_checks_a_train_config_once(tiny_model_dir, pair_file, tmp_path, monkeypatch):
    calls = []
    real = Config.check
    monkeypatch.setattr(Config, "check", lambda self, origins: (calls.append(1),
                                                               real(self, origins))[1])
    assert main(_run_args(tiny_model_dir("llama"), pair_file, tmp_path / "out",
                          tmp_path / "cache")) == 0
    assert len(calls) == 1  # was three: the CLI's reading, its --set pass, the trainer


def test_a_config_changed_after_its_check_is_checked_again(tiny_model_dir, pair_file, tmp_path):
    cfg = TrainConfig(model=str(tiny_model_dir("llama")), data=str(pair_file),
                      output=str(tmp_path / "o")).validate()
    cfg.lr = -1.0
    try:
        cfg.checked()
    except ValueError as e:
        assert "lr" in str(e)
    else:
        raise AssertionError("a changed setting was not checked")


def test_hyperparameters_are_resolved_once_per_run(tiny_model_dir, pair_file, tmp_path,
                                                    monkeypatch):
    from prefalign.objectives.registry import Hyperparameter

    cfg = TrainConfig(model=str(tiny_model_dir("llama")), data=str(pair_file),
                      output=str(tmp_path / "out"), objective="sigmoid", max_steps=3,
                      batch_size=2, grad_accum=2, objective_args={"beta": 0.2},
                      cache_dir=str(tmp_path / "cache"), progress=False)
    trainer = Trainer(cfg)
    checks = []
    real = Hyperparameter.check
    monkeypatch.setattr(Hyperparameter, "check",
                        lambda self, objective, value: (checks.append(self.name),
                                                        real(self, objective, value))[1])
    trainer.train()
    assert checks == []  # was one per micro-batch and per lookup of what the objective reads


def test_a_step_plan_draws_one_permutation_per_epoch(monkeypatch):
    draws = []
    real = torch.randperm
    monkeypatch.setattr(batches.torch, "randperm",
                        lambda *a, **k: (draws.append(a[0]), real(*a, **k))[1])
    batches._epoch_order.cache_clear()
    plan = batches.BatchPlan(num_examples=37, batch_size=2, grad_accum=3, world_size=2, seed=5)
    steps = [plan.step(s, rank) for s in range(plan.steps_per_epoch) for rank in (0, 1)]
    assert draws == [37]  # was two per step and process
    # the plan is the same as before: each step's examples split over micro-batches and ranks
    for s in range(plan.steps_per_epoch):
        chosen = plan.step_examples(s)
        assert steps[2 * s].examples == chosen
        merged = sorted(i for rank in (0, 1) for m in steps[2 * s + rank].micro for i in m)
        assert merged == sorted(chosen)


def test_loaded_records_are_not_validated_again_when_tokenized(tiny_model_dir, pair_file,
                                                               monkeypatch):
    from transformers import AutoTokenizer

    from prefalign import objectives
    from prefalign.data import tokenization
    from prefalign.train.data_prep import prepare_examples

    again = []
    real = tokenization.validate_record
    monkeypatch.setattr(tokenization, "validate_record",
                        lambda *a, **k: (again.append(1), real(*a, **k))[1])
    tok = AutoTokenizer.from_pretrained(tiny_model_dir("llama"))
    cfg = TrainConfig(model="-", data=str(pair_file))
    examples, _ = prepare_examples(pair_file, cfg, objectives.get("sigmoid"), tok)
    assert len(examples) == 16 and again == []  # was once more per record
    # records built in Python are still validated before tokenizing
    from prefalign.data import PairRecord, tokenize_records

    tokenize_records([PairRecord("p", "a", "b")], tok)
    assert again == [1]


def _cache(model_dir, examples, cache_dir):
    loads = []

    def load():
        from prefalign.engine.forward import PackedLogProbModel
        from transformers import AutoModelForCausalLM

        loads.append(1)
        return PackedLogProbModel(AutoModelForCausalLM.from_pretrained(model_dir))

    ref = CachedReference.build(load, str(model_dir), examples, cache_dir=cache_dir,
                                pad_token_id=0, settings={"dtype": "float32"}, progress=False)
    return ref, bool(loads)


def test_the_reference_cache_knows_a_model_by_its_contents(tiny_model_dir, tmp_path):
    from prefalign.data import TokenizedExample

    examples = [TokenizedExample([1, 2, 3], [[4, 5], [6]], "pairwise"),
                TokenizedExample([2, 3], [[7], [8, 9]], "pairwise")]
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir("llama"), model)
    cache = tmp_path / "cache"
    first, loaded = _cache(model, examples, cache)
    assert loaded and not first.reused
    # the same model copied elsewhere: the same contents, the cache is reused (was: its path)
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    second, loaded = _cache(copy, examples, cache)
    assert second.reused and not loaded
    assert torch.equal(second.logps, first.logps)
    # touched (a new modification time, the same bytes): reused (was: recomputed)
    weights = next(model.glob("*.safetensors"))
    os.utime(weights, (1, 1))
    assert _cache(model, examples, cache)[0].reused
    # other weights of the same size under the same name and time: recomputed
    from safetensors.torch import load_file, save_file

    state = load_file(weights)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 1.0
    stat = weights.stat()
    save_file(state, str(weights), metadata={"format": "pt"})
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size
    third, loaded = _cache(model, examples, cache)
    assert loaded and not third.reused
    assert not torch.equal(third.logps, first.logps)
