"""TRL config fields -> prefalign settings: mapped, accepted at their default, or refused by
name; the same table for DPOConfig and for TRL's YAML configs."""

import pytest

from prefalign.compat.trl import (FIELDS, DPOConfig, DPOTrainer, KTOConfig,
                                  UnsupportedFieldError, translate_yaml)
from prefalign.train.config import TrainConfig


def _train_config(cfg, **extra):
    values = cfg.to_train_config_values()
    values.update(model="m", data="d", **extra)
    return TrainConfig(**values).checked()


def test_common_fields_map_onto_train_config():
    cfg = DPOConfig(output_dir="o", beta=0.25, learning_rate=3e-5, per_device_train_batch_size=2,
                    gradient_accumulation_steps=4, num_train_epochs=2, max_steps=7,
                    lr_scheduler_type="cosine", warmup_ratio=0.1, logging_steps=3, save_steps=5,
                    bf16=False, gradient_checkpointing=False, seed=3, max_length=256,
                    max_prompt_length=128, precompute_ref_log_probs=True, report_to="none")
    tc = _train_config(cfg)
    assert (tc.objective, tc.objective_args["beta"], tc.lr, tc.batch_size, tc.grad_accum,
            tc.epochs, tc.max_steps, tc.scheduler, tc.warmup_ratio, tc.logging_steps,
            tc.save_steps, tc.bf16, tc.gradient_checkpointing, tc.seed, tc.max_length,
            tc.max_prompt_length, tc.reference, tc.report_to) == \
        ("sigmoid", 0.25, 3e-5, 2, 4, 2.0, 7, "cosine", 0.1, 3, 5, False, False, 3, 256,
         128, "cache", [])
    assert cfg.beta == 0.25 and cfg.loss_type == ["sigmoid"]  # read back as in TRL


def test_trl_defaults_apply_where_they_differ_from_prefalign():
    tc = _train_config(DPOConfig(output_dir="o"))
    assert (tc.lr, tc.batch_size, tc.epochs, tc.logging_steps, tc.save_steps, tc.seed,
            tc.bf16, tc.gradient_checkpointing, tc.max_length) == \
        (1e-6, 8, 3.0, 10, 500, 42, True, True, 1024)


def test_loss_type_list_with_weights_is_a_weighted_mixture():
    tc = _train_config(DPOConfig(output_dir="o", loss_type=["sigmoid", "bco_pair", "sft"],
                                 loss_weights=[0.8, 0.2, 1.0]))
    assert tc.objective == "0.8*sigmoid+0.2*bco_pair+1*sft"
    with pytest.raises(ValueError, match="loss_weights has 2 weights for 3"):
        DPOConfig(loss_type=["sigmoid", "bco_pair", "sft"], loss_weights=[0.8, 0.2])


def test_modifiers_and_old_fields():
    tc = _train_config(DPOConfig(output_dir="o", f_divergence_type="js_divergence",
                                 use_weighting=True, ld_alpha=0.3))
    assert tc.objective_args["f_divergence_type"] == "js_divergence"
    assert tc.objective_args["use_weighting"] is True and tc.objective_args["ld_alpha"] == 0.3
    tc = _train_config(DPOConfig(output_dir="o", rpo_alpha=0.5))
    assert tc.objective == "rpo" and tc.objective_args["rpo_alpha"] == 0.5
    tc = _train_config(DPOConfig(output_dir="o", loss_type="robust", label_smoothing=0.1))
    assert tc.objective == "robust" and tc.objective_args["label_smoothing"] == 0.1
    tc = _train_config(KTOConfig(output_dir="o", desirable_weight=1.5, beta=0.2))
    assert tc.objective == "kto" and tc.objective_args == {"beta": 0.2, "desirable_weight": 1.5}


@pytest.mark.parametrize("field, value, words", [
    ("fp16", True, "fp16=True is not supported"),
    ("padding_free", True, "padding_free"),
    ("truncation_mode", "keep_end", "keep_end"),
    ("lr_scheduler_type", "polynomial", "polynomial"),
    ("eval_accumulation_steps", 4, "eval_accumulation_steps=4"),  # TrainingArguments, unmapped
    ("label_smoothing", 0.1, "label_smoothing"),  # sigmoid has none in prefalign
    ("no_such_field", 1, "no_such_field: not a field"),
])
def test_unsupported_fields_are_refused_by_name(field, value, words):
    with pytest.raises(UnsupportedFieldError, match=words):
        DPOConfig(output_dir="o", **{field: value})


def test_fields_left_at_trls_default_are_accepted():
    cfg = DPOConfig(output_dir="o", fp16=False, padding_free=False, eval_accumulation_steps=None,
                    push_to_hub=False, use_liger_kernel=False)
    assert cfg.fp16 is False


def test_unknown_trainer_argument_and_push_to_hub_field():
    with pytest.raises(UnsupportedFieldError, match="push_to_hub"):
        DPOConfig(output_dir="o", push_to_hub=True)
    with pytest.raises(UnsupportedFieldError, match="data_collator"):
        DPOTrainer(model="m", args=DPOConfig(output_dir="o"), train_dataset="d",
                   data_collator=object())


def test_trl_yaml_is_translated_with_the_same_table():
    trl_yaml = {"model_name_or_path": "Qwen/x", "dataset_name": "pairs.jsonl",
                "learning_rate": 5e-7, "loss_type": ["sigmoid", "sft"], "loss_weights": [1, 0.5],
                "per_device_train_batch_size": 2, "output_dir": "out", "use_peft": True,
                "lora_r": 8, "lora_target_modules": ["q_proj", "v_proj"], "beta": 0.05,
                "max_length": 512}
    out = translate_yaml(trl_yaml)
    assert out["lora_dropout"] == 0.05  # TRL's ModelConfig default, not prefalign's 0
    assert (out["model"], out["data"], out["lr"], out["objective"], out["objective_weights"],
            out["batch_size"], out["output"], out["lora"], out["lora_r"],
            out["objective_args"], out["max_length"]) == \
        ("Qwen/x", "pairs.jsonl", 5e-7, "sigmoid,sft", [1.0, 0.5], 2, "out", True, 8,
         {"beta": 0.05}, 512)
    from prefalign.compat.trl import is_trl_config

    assert is_trl_config(trl_yaml) and not is_trl_config({"lr": 1e-6, "beta": 0.1, "model": "m"})
    tc = TrainConfig(**out).checked()  # what prefalign train --config would then run
    assert tc.objective == "1*sigmoid+0.5*sft"
    with pytest.raises(UnsupportedFieldError, match="fp16"):
        translate_yaml({**trl_yaml, "fp16": True})


def test_peft_lora_config_becomes_prefalign_lora(tmp_path):
    from peft import LoraConfig

    from prefalign.compat.trl import _lora_settings

    got = _lora_settings(LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05,
                                    target_modules=["v_proj", "q_proj"], task_type="CAUSAL_LM"))
    assert got == {"lora": True, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.05,
                   "lora_target_modules": ["q_proj", "v_proj"]}
    with pytest.raises(UnsupportedFieldError, match="use_dora"):
        _lora_settings(LoraConfig(r=4, target_modules=["q_proj"], use_dora=True))


def test_every_refused_field_says_why():
    assert all(f.to is not None or f.refused for f in FIELDS.values())


def test_values_are_converted_strictly_but_numpy_and_torch_scalars_pass():
    import numpy as np
    import torch

    tc = _train_config(DPOConfig(output_dir="o", learning_rate=torch.tensor(2e-5),
                                 seed=np.int64(7), bf16=np.bool_(False),
                                 num_train_epochs=np.float32(2)))
    assert (tc.lr, tc.seed, tc.bf16, tc.epochs) == (pytest.approx(2e-5), 7, False, 2.0)
    assert _train_config(DPOConfig(output_dir="o", bf16=None)).bf16 is True  # TRL 1.x: on
    assert _train_config(DPOConfig(output_dir="o", bf16=0)).bf16 is False
    for bad in ({"seed": 1.5}, {"per_device_train_batch_size": "two"}, {"bf16": "no"},
                {"learning_rate": True}):
        with pytest.raises(UnsupportedFieldError, match=next(iter(bad))):
            DPOConfig(output_dir="o", **bad).to_train_config_values()


def test_save_strategy_no_wins_over_save_steps():
    assert _train_config(DPOConfig(output_dir="o", save_strategy="no",
                                   save_steps=20)).save_steps == 0
    assert _train_config(DPOConfig(output_dir="o", save_strategy="no")).save_steps == 0
