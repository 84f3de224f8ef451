"""TRL's DPO and KTO quickstart scripts, with only the import line changed, give TRL's own
step-1 values (recorded by bench/trl_quickstart.py from TRL 1.x in trl_quickstart_reference.json)."""

import json
import math
from pathlib import Path

import pytest
import torch

import fixture

REFERENCE = json.loads((Path(__file__).parent / "trl_quickstart_reference.json").read_text())


def _run(bench, tmp_path, model, script, data):
    env = {"QUICKSTART_MODEL": str(model), "QUICKSTART_DATA": str(data),
           "QUICKSTART_OUT": str(tmp_path / "out")}
    return bench.run_script(script, env, prefalign=True)["steps"]


def test_dpo_quickstart_step_values_equal_trls(bench, tmp_path, quickstart_model):
    steps = _run(bench, tmp_path, quickstart_model, "quickstart_dpo.py",
                 fixture.dpo_data(tmp_path / "dpo.jsonl"))
    ref = REFERENCE["dpo"]["steps"]
    assert [s["step"] for s in steps] == [s["step"] for s in ref] == [1.0, 2.0]
    for ours, trl in zip(steps, ref):  # log-probs before step 1 and after its update
        for key in ("logps/chosen", "logps/rejected"):
            assert ours[key] == pytest.approx(trl[key], rel=1e-5), (ours["step"], key)
    # step 1: the policy is its reference, the loss ln 2 (bf16 autocast: within 1e-5)
    assert steps[0]["loss"] == pytest.approx(ref[0]["loss"], abs=1e-5)
    assert ref[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert key in steps[0], key


def test_kto_quickstart_step_one_loss_equals_trls(bench, tmp_path, quickstart_model):
    steps = _run(bench, tmp_path, quickstart_model, "quickstart_kto.py",
                 fixture.kto_data(tmp_path / "kto.jsonl"))
    ref = REFERENCE["kto"]["steps"]
    assert [s["step"] for s in steps] == [s["step"] for s in ref]
    assert steps[0]["loss"] == pytest.approx(ref[0]["loss"], abs=1e-4)
    assert steps[1]["loss"] == pytest.approx(ref[1]["loss"], abs=1e-4)
    assert steps[1]["loss"] < steps[0]["loss"]  # the first update lowered it, as in TRL's run
    for ours, trl in zip(steps, ref):  # the mean log-prob of each label's rows
        for key in ("logps/chosen", "logps/rejected"):
            assert ours[key] == pytest.approx(trl[key], rel=1e-5), (ours["step"], key)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins"):
        assert key in steps[0], key


def test_trained_weights_are_loaded_back_into_the_users_model(tmp_path, quickstart_model):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from prefalign.compat.trl import DPOConfig, DPOTrainer

    rows = [json.loads(line) for line in
            fixture.dpo_data(tmp_path / "d.jsonl", "standard").read_text().splitlines()]
    events = []

    class Record(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            events.append("begin")

        def on_log(self, args, state, control, logs=None, **kw):
            events.append(("log", state.global_step, "rewards/margins" in logs))

        def on_train_end(self, args, state, control, **kw):
            events.append("end")

    model = AutoModelForCausalLM.from_pretrained(quickstart_model)
    before = model.lm_head.weight.detach().clone()
    trainer = DPOTrainer(model=model, args=DPOConfig(output_dir=str(tmp_path / "o"), max_steps=1,
                                                     learning_rate=1e-2, use_cpu=True,
                                                     bf16=False, logging_steps=1),
                         processing_class=AutoTokenizer.from_pretrained(quickstart_model),
                         train_dataset=Dataset.from_list(rows), callbacks=[Record()])
    out = trainer.train()
    assert out.global_step == 1
    assert events == ["begin", ("log", 1, True), "end"]
    assert trainer.model is model and not torch.equal(model.lm_head.weight, before)
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "o" / "prefalign-run" / "model")
    assert torch.equal(saved.lm_head.weight, model.lm_head.weight)
    with pytest.raises(RuntimeError, match="offline"):
        trainer.push_to_hub()


def test_conversational_prompt_lora_and_evaluate(tmp_path, quickstart_model):
    from datasets import Dataset, DatasetDict
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefalign.compat.trl import DPOConfig, DPOTrainer

    rows = [json.loads(line) for line in
            fixture.dpo_data(tmp_path / "d.jsonl", "conversational").read_text().splitlines()]
    data = DatasetDict({"train": Dataset.from_list(rows)})
    model = AutoModelForCausalLM.from_pretrained(quickstart_model)
    trainer = DPOTrainer(
        model=model, args=DPOConfig(output_dir=str(tmp_path / "o"), max_steps=1, use_cpu=True,
                                    bf16=False, logging_steps=1, learning_rate=1e-3),
        processing_class=AutoTokenizer.from_pretrained(quickstart_model), train_dataset=data,
        eval_dataset=Dataset.from_list(rows[:4]),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                               task_type="CAUSAL_LM"))
    trainer.train()
    assert isinstance(trainer.model, PeftModel)
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] == metrics["eval/loss"] and "eval_rewards/accuracies" in metrics
    assert math.isfinite(metrics["eval_logps/chosen"]) and metrics["eval_logps/chosen"] < 0
