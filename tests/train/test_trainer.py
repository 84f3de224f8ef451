"""The training loop: metrics contract, step-1 log-probs, reference cache, exact resume."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from prefalign.data import load_records, tokenize_records
from prefalign.engine.forward import plain_sequence_logps
from prefalign.train import TrainConfig, Trainer, train
from prefalign.train.batches import BatchPlan

REQUIRED = {"step", "loss", "seconds", "pairs", "tokens", "logps/chosen", "logps/rejected",
            "rewards/accuracy", "rewards/margin"}


def config(model, data, out, **kw):
    base = dict(model=str(model), data=str(data), output=str(out), cache_dir=str(out.parent / "cache"),
                batch_size=2, grad_accum=2, lr=1e-3, max_steps=3, progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_dpo_run_writes_metrics_and_a_loadable_model(tiny_model_dir, pair_file, tmp_path):
    model_dir = tiny_model_dir("llama")
    cfg = config(model_dir, pair_file, tmp_path / "run")
    result = train(cfg)
    lines = metrics(tmp_path / "run")
    assert [m["step"] for m in lines] == [1, 2, 3]
    assert REQUIRED <= set(lines[0])
    assert lines[0]["pairs"] == 4
    assert abs(lines[0]["loss"] - torch.log(torch.tensor(2.0)).item()) < 1e-5, "policy == reference at step 1"
    saved = AutoModelForCausalLM.from_pretrained(result.output_dir / "model")
    start = AutoModelForCausalLM.from_pretrained(model_dir)
    assert not torch.equal(saved.get_output_embeddings().weight, start.get_output_embeddings().weight)

    # step 1 reports the log-probs of the policy before any update
    tok = AutoTokenizer.from_pretrained(model_dir)
    records, _ = load_records(pair_file)
    examples, _ = tokenize_records(records, tok)
    first = BatchPlan(len(examples), 2, 2, 1, cfg.seed).step_examples(0)
    with torch.no_grad():
        plain = plain_sequence_logps(start, [examples[i] for i in first])
    assert lines[0]["logps/chosen"] == pytest.approx(plain[:, 0].mean().item(), rel=1e-5)
    assert lines[0]["logps/rejected"] == pytest.approx(plain[:, 1].mean().item(), rel=1e-5)

    # where the time went: each phase that ran, in order; the steps at least the step times
    timings = json.loads((result.output_dir / "timings.json").read_text())
    assert timings.pop("compiled_graphs") == 0  # nothing here is compiled (sdpa on CPU)
    assert timings.pop("distributed")["type"] == "single process"
    assert timings == result.phase_seconds
    assert list(timings) == ["data", "load", "reference", "steps", "save"]
    assert all(v > 0 for v in timings.values())
    assert timings["steps"] >= sum(m["seconds"] for m in lines) - 1e-3


def test_second_run_reuses_the_reference_cache(tiny_model_dir, pair_file, tmp_path):
    model_dir = tiny_model_dir("llama")
    first = train(config(model_dir, pair_file, tmp_path / "a", max_steps=2))
    second = train(config(model_dir, pair_file, tmp_path / "b", max_steps=2))
    assert not first.reference_reused and second.reference_reused
    assert [m["loss"] for m in metrics(tmp_path / "a")] == [m["loss"] for m in metrics(tmp_path / "b")]
    # other tokenization settings must not hit the same cache entry
    third = train(config(model_dir, pair_file, tmp_path / "c", max_steps=1, max_length=6))
    assert not third.reference_reused


def test_resume_continues_exactly(tiny_model_dir, pair_file, tmp_path, monkeypatch):
    model_dir = tiny_model_dir("qwen2")
    train(config(model_dir, pair_file, tmp_path / "whole", max_steps=5, save_steps=2))
    expected = [m["loss"] for m in metrics(tmp_path / "whole")]

    original = Trainer._run_step

    def crash_after_three(self):
        if self.step == 3:
            raise KeyboardInterrupt("simulated interruption")
        return original(self)

    monkeypatch.setattr(Trainer, "_run_step", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        train(config(model_dir, pair_file, tmp_path / "cut", max_steps=5, save_steps=2))
    assert [m["step"] for m in metrics(tmp_path / "cut")] == [1, 2, 3]
    monkeypatch.setattr(Trainer, "_run_step", original)
    train(config(model_dir, pair_file, tmp_path / "cut", max_steps=5, save_steps=2))
    resumed = metrics(tmp_path / "cut")
    assert [m["step"] for m in resumed] == [1, 2, 3, 4, 5]
    assert [m["loss"] for m in resumed] == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_grad_accumulation_matches_a_bigger_batch(tiny_model_dir, pair_file, tmp_path):
    model_dir = tiny_model_dir("llama")
    train(config(model_dir, pair_file, tmp_path / "ga", batch_size=2, grad_accum=2))
    train(config(model_dir, pair_file, tmp_path / "big", batch_size=4, grad_accum=1))
    a, b = metrics(tmp_path / "ga"), metrics(tmp_path / "big")
    assert [m["loss"] for m in a] == pytest.approx([m["loss"] for m in b], rel=1e-4)


def test_config_file_values_are_overridden_by_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.5\nbatch_size: 7\nobjective: ipo\n")
    cfg = TrainConfig.from_sources(str(path), lr=0.1)
    assert (cfg.lr, cfg.batch_size, cfg.objective) == (0.1, 7, "ipo")
    path.write_text("learning_rate: 0.5\n")
    with pytest.raises(ValueError, match=r"learning_rate \(did you mean lr\?\)"):
        TrainConfig.from_sources(str(path))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_flex_attention_without_a_gpu_is_refused_before_loading(pair_file, tmp_path):
    cfg = TrainConfig(model=str(tmp_path / "does-not-exist"), data=str(pair_file),
                      attn_implementation="flex_attention", output=str(tmp_path / "r"),
                      progress=False)
    with pytest.raises(ValueError, match="flex_attention needs a CUDA GPU"):
        train(cfg)


def test_token_budget_micro_batches_keep_the_step(tiny_model_dir, pair_file, tmp_path):
    """--max-tokens-per-batch changes how a step's examples go through the model, not the step:
    the same losses and the same trained weights as micro-batches of --batch-size examples."""
    from prefalign.train.batches import by_tokens

    # lengths 1, 9, 8, 5 (examples 4, 1, 7, 2): first fit decreasing into rows of 9
    assert by_tokens([4, 1, 7, 2], [3, 9, 5, 4, 1, 1, 1, 8], 9) == [[1], [4, 7], [2]]
    model_dir = tiny_model_dir("llama")
    plain = train(config(model_dir, pair_file, tmp_path / "a", batch_size=4, grad_accum=1))
    budget = train(config(model_dir, pair_file, tmp_path / "b", batch_size=4, grad_accum=1,
                          max_tokens_per_batch=12))
    for a, b in zip(metrics(tmp_path / "a"), metrics(tmp_path / "b")):
        assert a["pairs"] == b["pairs"] and a["tokens"] == b["tokens"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
    wa = AutoModelForCausalLM.from_pretrained(plain.output_dir / "model").state_dict()
    wb = AutoModelForCausalLM.from_pretrained(budget.output_dir / "model").state_dict()
    for name, value in wa.items():
        torch.testing.assert_close(wb[name], value, rtol=1e-4, atol=1e-6, msg=name)


def test_sft_token_mean_is_the_steps_whatever_the_split(tiny_model_dir, tmp_path):
    """nll_reduction='batch' was a mean of micro-batch token means: 2x2 and 1x4 gave other
    gradients than 4x1 (8.7% and 33% in an audit). Now Σ(−log π)/Σ|y| over the whole step."""
    from safetensors.torch import load_file

    rows = [{"prompt": f"{i}+{i}=", "completion": "x" * (1 + (7 * i) % 9)} for i in range(8)]
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model_dir = tiny_model_dir("llama")
    runs = {}
    for b, a in ((4, 1), (2, 2), (1, 4)):
        out = tmp_path / f"b{b}a{a}"
        train(config(model_dir, data, out, objective="sft", batch_size=b, grad_accum=a,
                     max_steps=2, lr=1e-2))
        runs[(b, a)] = ([m["loss"] for m in metrics(out)], load_file(out / "model" / "model.safetensors"))
    base_losses, base_weights = runs[(4, 1)]
    for key, (losses, weights) in runs.items():
        assert losses == pytest.approx(base_losses, rel=1e-5), key
        for name, w in base_weights.items():
            torch.testing.assert_close(weights[name], w, rtol=1e-4, atol=1e-5,
                                       msg=lambda m, k=key, n=name: f"{k} {n}: {m}")
    assert base_losses[0] == pytest.approx(_first_step_token_mean(model_dir, data), rel=1e-5)


def _first_step_token_mean(model_dir, data):
    """Σ(−log π)/Σ|y| over step 1's examples, one plain forward per example."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    examples, _ = tokenize_records(load_records(data)[0], tok)
    step = [examples[i] for i in BatchPlan(len(examples), 4, 1, 1, 3).step_examples(0)]
    with torch.no_grad():
        logps = plain_sequence_logps(model, step)[:, 0]
    return float(-logps.sum() / sum(len(ex.responses[0]) for ex in step))


def test_on_log_hooks_see_every_logged_step(tiny_model_dir, pair_file, tmp_path):
    from prefalign.train import Trainer

    out = tmp_path / "hooked"
    trainer = Trainer(TrainConfig(model=str(tiny_model_dir("llama")), data=str(pair_file),
                                  output=str(out), batch_size=4, max_steps=3, logging_steps=2,
                                  progress=False, cache_dir=str(tmp_path / "cache")))
    seen = []
    trainer.on_log.append(lambda step, metrics: seen.append((step, metrics["loss"])))
    trainer.train()
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s for s, _ in seen] == [m["step"] for m in logged] == [1, 2]
    assert [loss for _, loss in seen] == [m["loss"] for m in logged]
