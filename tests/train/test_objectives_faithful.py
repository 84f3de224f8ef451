"""Objectives under the trainer: KTO's mismatched completions, ODPO's margins, and the running
statistics of BCO and β-DPO across steps, checkpoints and resume."""

import json
import math
from collections import Counter

import pytest
import torch
from transformers import AutoTokenizer

from prefalign import objectives
from prefalign.train import TrainConfig, Trainer, train
from prefalign.train.batches import BatchPlan
from prefalign.train import data_prep
from prefalign.train.data_prep import prepare_examples



def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _prepare(tiny_model_dir, data, objective, tmp_path):
    model = tiny_model_dir("llama")
    cfg = TrainConfig(model=str(model), data=str(data), objective=objective, output=str(tmp_path / "r"))
    examples, _ = prepare_examples(data, cfg, objectives.get(objective), AutoTokenizer.from_pretrained(model))
    return examples


def _check_mismatched(examples):
    """Response 1 of each example is the completion of an example with another prompt, and
    (no prompt holding more than half of the data) each completion is borrowed exactly once."""
    owners = {}
    for j, ex in enumerate(examples):
        owners.setdefault(tuple(ex.responses[0]), []).append(j)
    for i, ex in enumerate(examples):
        candidates = [j for j in owners[tuple(ex.responses[1])] if examples[j].prompt_ids != ex.prompt_ids]
        assert candidates, f"example {i} borrowed a completion of its own prompt"
    assert Counter(tuple(ex.responses[1]) for ex in examples) == Counter(tuple(ex.responses[0]) for ex in examples)


def test_kto_on_split_pairs_never_borrows_the_other_half_of_its_pair(tiny_model_dir, pair_file, tmp_path):
    examples = _prepare(tiny_model_dir, pair_file, "kto", tmp_path)
    assert [ex.label for ex in examples[:4]] == [True, False, True, False]  # chosen_k, rejected_k, ...
    _check_mismatched(examples)


def test_kto_with_several_completions_per_prompt_borrows_from_other_prompts(tiny_model_dir, tmp_path):
    rows = [{"prompt": f"{p}+{p}=", "completion": str(2 * p + k), "label": k == 0}
            for p in range(4) for k in range(3)]  # 4 prompts, 3 completions each, grouped
    examples = _prepare(tiny_model_dir, write_jsonl(tmp_path / "u.jsonl", rows), "kto", tmp_path)
    _check_mismatched(examples)


def test_mismatched_partners():
    assert data_prep.mismatched_partners(["a", "a", "b", "b", "c", "c"]) == [2, 3, 4, 5, 0, 1]
    # interleaved prompts are grouped first
    p = ["a", "b", "a", "b"]
    partners = data_prep.mismatched_partners(p)
    assert all(p[j] != p[i] for i, j in enumerate(partners)) and sorted(partners) == [0, 1, 2, 3]
    # one prompt holds most of the data: every example still gets another prompt's completion
    p = ["a", "a", "a", "b"]
    assert all(p[j] != p[i] for i, j in enumerate(data_prep.mismatched_partners(p)))
    with pytest.raises(ValueError, match="at least 2 different prompts"):
        data_prep.mismatched_partners(["a", "a"])


def _scored_pairs(path, with_margin=False):
    rows = []
    for i in range(8):
        row = {"prompt": f"{i}+{i}=", "chosen": str(2 * i), "rejected": str(2 * i + 1),
               "score_chosen": 1.0 + 0.5 * i, "score_rejected": 0.25}
        if with_margin:
            row["margin"] = 0.1 * i
        rows.append(row)
    return write_jsonl(path, rows), rows


def test_odpo_takes_the_margin_from_the_scores(tiny_model_dir, tmp_path):
    """Step 1 (policy = reference, h = 0): the loss is mean(−log σ(−log(1 + m))) with
    m = score_chosen − score_rejected, not ln 2 (a margin of 0)."""
    data, rows = _scored_pairs(tmp_path / "scored.jsonl")
    model = tiny_model_dir("llama")
    cfg = TrainConfig(model=str(model), data=str(data), objective="odpo", output=str(tmp_path / "r"),
                      cache_dir=str(tmp_path / "cache"), batch_size=4, max_steps=1, progress=False, seed=3)
    train(cfg)
    first = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])
    chosen = BatchPlan(len(rows), 4, 1, 1, 3).step_examples(0)
    margins = [rows[i]["score_chosen"] - rows[i]["score_rejected"] for i in chosen]
    expected = sum(math.log1p(math.exp(math.log1p(m))) for m in margins) / len(margins)
    assert first["loss"] == pytest.approx(expected, rel=1e-5)
    # a margin column wins over the scores
    data, rows = _scored_pairs(tmp_path / "margins.jsonl", with_margin=True)
    examples = _prepare(tiny_model_dir, data, "odpo", tmp_path)
    assert [ex.margin for ex in examples] == pytest.approx([r["margin"] for r in rows])


def test_odpo_without_margin_or_scores_is_refused_naming_the_row(tiny_model_dir, pair_file, tmp_path):
    cfg = TrainConfig(model=str(tiny_model_dir("llama")), data=str(pair_file), objective="odpo",
                      output=str(tmp_path / "r"), progress=False)
    with pytest.raises(ValueError, match=r"pairs.jsonl, line 1, field 'margin'.*score_chosen and score_rejected"):
        train(cfg)


def _config(model, data, out, objective, **kw):
    base = dict(model=str(model), data=str(data), output=str(out), cache_dir=str(out.parent / "cache"),
                objective=objective, batch_size=4, lr=5e-2, max_steps=5, save_steps=2, progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def _interrupted_then_resumed(cfg_for, out, monkeypatch, forget_state=False):
    original = Trainer._run_step

    def crash_after_three(self):
        if self.step == 3:
            raise KeyboardInterrupt("simulated interruption")
        return original(self)

    monkeypatch.setattr(Trainer, "_run_step", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        train(cfg_for(out))
    monkeypatch.setattr(Trainer, "_run_step", original)
    if forget_state:
        monkeypatch.setattr(getattr(objectives, "ObjectiveState"), "load_state_dict", lambda self, state: None)
    train(cfg_for(out))
    monkeypatch.undo()
    return _losses(out)


@pytest.mark.parametrize("objective,args", [
    ("bco_pair", {"reward_shift": "running_mean"}),
    ("beta_dpo", {}),
])
def test_a_resumed_run_equals_an_uninterrupted_one(objective, args, tiny_model_dir, pair_file, tmp_path,
                                                   monkeypatch):
    model = tiny_model_dir("qwen2")
    cfg_for = lambda out: _config(model, pair_file, out, objective, objective_args=args)  # noqa: E731
    train(cfg_for(tmp_path / "whole"))
    expected = _losses(tmp_path / "whole")
    state = json.loads((tmp_path / "whole" / "checkpoints" / "step-4" / "trainer_state.json").read_text())
    name = {"bco_pair": "reward", "beta_dpo": "gap"}[objective]
    moments = state["objective_state"][name]
    assert moments["count"] == 4 * 4 * (2 if objective == "bco_pair" else 1)  # every value of 4 steps
    assert _interrupted_then_resumed(cfg_for, tmp_path / "cut", monkeypatch) == pytest.approx(
        expected, rel=1e-6, abs=1e-7)
    # the running statistics matter: a resume (from step 2) that lost them gives other losses
    lost = _interrupted_then_resumed(cfg_for, tmp_path / "lost", monkeypatch, forget_state=True)
    assert lost[:2] == pytest.approx(expected[:2], rel=1e-6, abs=1e-7)
    assert lost[2] != pytest.approx(expected[2], rel=1e-6, abs=1e-7)


def test_bco_uses_the_running_mean_reward_in_training(tiny_model_dir, unpaired_file, tmp_path, monkeypatch):
    """Every step's δ is the mean reward of all steps so far (this one included), not the
    batch's own: the values the trainer folds in are exactly β·ρ of each step's examples."""
    seen = []
    real = objectives.RunningMoments.update_global

    def spy(self, values, reduce=None):
        seen.append(values.detach().double().clone())
        return real(self, values, reduce)

    monkeypatch.setattr(objectives.RunningMoments, "update_global", spy)
    trainer = Trainer(_config(tiny_model_dir("llama"), unpaired_file, tmp_path / "r", "bco", max_steps=3,
                              save_steps=0))
    trainer.train()
    values = torch.cat(seen)
    assert len(seen) == 3 and values.numel() == 12
    moments = trainer.objective_state.moments["reward"]
    assert moments.count == 12 and moments.mean == pytest.approx(float(values.mean()), rel=1e-9, abs=1e-12)
    assert float(seen[0].abs().max()) == 0.0  # step 1: policy = reference
    assert float(seen[2].abs().max()) > 0.0
