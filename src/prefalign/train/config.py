"""Training configuration: one dataclass, read from YAML, overridden by command-line flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    # what to train
    model: str = ""
    data: str = ""
    objective: str = "sigmoid"
    output: str = "runs/train"
    objective_args: dict[str, Any] = field(default_factory=dict)  # beta etc. go here too
    # reference: "auto" = none for reference-free objectives, "adapter-disabled" with LoRA,
    # otherwise "cache" (computed once, cached on disk); "model" = a frozen copy every step
    reference: str = "auto"
    ref_model: str | None = None  # default: the starting policy
    cache_dir: str | None = None  # default: OUTPUT/../.prefalign-cache
    # data
    eval_data: str | None = None
    max_length: int | None = None
    max_prompt_length: int | None = None
    truncation: str = "keep_start"
    on_error: str = "raise"
    # optimisation
    lr: float = 5e-6
    batch_size: int = 4  # examples (pairs) per device per micro-batch
    grad_accum: int = 1
    epochs: float = 1.0
    max_steps: int = -1
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    scheduler: str = "linear"  # linear | cosine | constant
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0
    # engine
    dtype: str = "float32"  # float32 | bfloat16 (weights); use bf16 for autocast on GPU
    bf16: bool = False  # mixed precision (autocast) through accelerate
    # auto: sdpa where the family supports it, else eager (Gemma-2, GPT-OSS); or sdpa | eager |
    # flex_attention (CUDA)
    attn_implementation: str = "auto"
    # MoE router load-balancing loss weight, like TRL: None = the model config's
    # router_aux_loss_coef when its output_router_logits is set, else off; 0 = off
    router_aux_loss_coef: float | None = None
    gradient_checkpointing: bool = False
    chunk_tokens: int = 1024
    row_tokens: int | None = None  # tokens per packed row (default: the longest example)
    ref_batch_tokens: int = 8192
    disable_dropout: bool = True
    # LoRA / QLoRA
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | str = "all-linear"
    qlora: bool = False
    merge_lora: bool = False
    # bookkeeping
    logging_steps: int = 1
    eval_steps: int = 0
    save_steps: int = 0
    save_total_limit: int = 2
    resume: bool = True
    report_to: list[str] = field(default_factory=list)  # tensorboard, wandb
    progress: bool = True
    trust_remote_code: bool = False

    @classmethod
    def from_sources(cls, yaml_path: str | None = None, **overrides) -> "TrainConfig":
        """YAML values first, then ``overrides`` (flags); unknown keys are an error."""
        values: dict[str, Any] = {}
        if yaml_path:
            import yaml

            with open(yaml_path, encoding="utf-8") as f:
                loaded = yaml.safe_load(f) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{yaml_path}: expected a mapping of option: value at the top level")
            values.update(loaded)
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            import difflib

            hints = [f"{u} (did you mean {', '.join(difflib.get_close_matches(u, known, 2)) or '?'})"
                     for u in unknown]
            where = f"{yaml_path}: " if yaml_path else ""
            raise ValueError(f"{where}unknown option(s): {'; '.join(hints)}")
        if isinstance(values.get("adam_betas"), list):
            values["adam_betas"] = tuple(values["adam_betas"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def output_dir(self) -> Path:
        return Path(self.output)
