"""Loading the policy (and a reference) for training: dtype, attention, dropout, LoRA/QLoRA,
gradient checkpointing."""

from __future__ import annotations

import torch
from torch import nn

from prefalign.train.config import TrainConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    return DTYPES[name]


def disable_dropout(model: nn.Module) -> None:
    """Preference losses compare log-probs of the same text under two models; dropout noise in
    either side biases them, so (like TRL's default) it is switched off."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0


def load_causal_lm(path: str, cfg: TrainConfig, *, for_training: bool) -> nn.Module:
    from prefalign.engine.loading import load_causal_lm as load_for_engine

    kwargs = dict(dtype=_dtype(cfg.dtype), attn_implementation=cfg.attn_implementation,
                  trust_remote_code=cfg.trust_remote_code)
    if cfg.qlora and for_training:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True)
    model = load_for_engine(path, **kwargs)
    if cfg.disable_dropout:
        disable_dropout(model)
    if not for_training:
        model.eval()
        model.requires_grad_(False)
        return model
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
        model.config.use_cache = False
    if cfg.lora or cfg.qlora:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if cfg.qlora:
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=cfg.gradient_checkpointing)
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=cfg.lora_target_modules, task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
        if cfg.gradient_checkpointing:
            model.enable_input_require_grads()
    model.train()
    return model


def enable_checkpointing(model) -> None:
    """Recompute activations in the backward pass (non-reentrant). transformers 5.25 renamed
    gradient checkpointing to activation checkpointing (the old name warns, to go in v6)."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
