"""Training configuration: one dataclass, read from YAML, overridden by command-line flags.

Every value is coerced to its field's declared type and checked against its meaning before
any model loads (:meth:`TrainConfig.validate`): counts and the learning rate positive,
``max_steps`` -1 ("use epochs") or positive, objective hyperparameters in their declared
ranges. Errors are :class:`ConfigError` (a ``ValueError``: ``prefalign train`` prints it as one
line) naming the setting, the file and line or flag it came from, and what it accepts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefalign.settings import (ConfigError, Routed, Settings, at_least, finite, one_of,
                                optional, positive, subject, where)

__all__ = ["TrainConfig", "ConfigError", "FIELD_HELP", "check_objective_args"]


@dataclass
class TrainConfig(Settings):
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
    keep_whitespace_variants: bool = False
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
    # micro-batches by tokens instead of --batch-size examples (the step's examples unchanged)
    max_tokens_per_batch: int | None = None
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
    resume: bool = True  # False: never resume a checkpoint (an existing run is then refused)
    # delete what an earlier run left in OUTPUT (checkpoints, metrics, model) and start over
    overwrite: bool = False
    report_to: list[str] = field(default_factory=list)  # tensorboard, wandb
    progress: bool = True
    trust_remote_code: bool = False

    def check(self, origins: dict[str, str]) -> None:
        """Across fields: the prompt limit below the example limit; objective hyperparameters
        (``objective_args``) in the objective's declared ranges."""
        if self.max_length is not None and self.max_prompt_length is not None \
                and self.max_prompt_length >= self.max_length:
            raise ConfigError(f"{where('max_prompt_length', origins)}max_prompt_length "
                              f"({self.max_prompt_length}) must be below max_length "
                              f"({self.max_length}) to leave room for the response")
        self.objective_args = check_objective_args(self.objective, self.objective_args, origins)
        modules = self.lora_target_modules
        if isinstance(modules, str) and modules != "all-linear":  # names, not a regex
            self.lora_target_modules = [m.strip() for m in modules.split(",") if m.strip()]
        for name in ("output", "cache_dir"):  # a file where a folder goes fails late, unnamed
            value = getattr(self, name)
            if value and Path(value).exists() and not Path(value).is_dir():
                raise ConfigError(f"{subject(name, origins)} {value}: exists and is not a folder")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def output_dir(self) -> Path:
        return Path(self.output)


# ---- what each setting means ----------------------------------------------------------------------
def _dtypes() -> tuple[str, ...]:
    return ("float32", "bfloat16", "float16")


_RULES = {
    "batch_size": (at_least(1), ">= 1 (pairs per device per micro-batch)"),
    "grad_accum": (at_least(1), ">= 1"),
    "epochs": (positive, "a finite number > 0"),
    "max_steps": ((lambda v: v == -1 or (finite(v) and v >= 1)), ">= 1, or -1 to use epochs"),
    "lr": (positive, "a finite number > 0"),
    "warmup_steps": (at_least(0), ">= 0"),
    "warmup_ratio": ((lambda v: finite(v) and 0 <= v < 1), "in [0, 1)"),
    "weight_decay": (at_least(0), "a finite number >= 0"),
    "max_grad_norm": (at_least(0), "a finite number >= 0 (0 = no clipping)"),
    "adam_betas": ((lambda v: len(v) == 2 and all(finite(b) and 0 <= b < 1 for b in v)),
                   "two numbers in [0, 1)"),
    "max_length": (optional(at_least(2)), ">= 2 (one prompt and one response token), or null"),
    "max_prompt_length": (optional(at_least(1)), ">= 1, or null"),
    "truncation": one_of("keep_start", "truncate_prompt_left", "drop"),
    "on_error": one_of("raise", "skip"),
    "reference": one_of("auto", "cache", "model", "adapter-disabled", "none"),
    "scheduler": one_of("linear", "cosine", "constant"),
    "dtype": one_of(*_dtypes()),
    "router_aux_loss_coef": (optional(at_least(0)), "a finite number >= 0, or null"),
    "chunk_tokens": (at_least(1), ">= 1"),
    "row_tokens": (optional(at_least(1)), ">= 1, or null"),
    "max_tokens_per_batch": (optional(at_least(1)), ">= 1, or null"),
    "ref_batch_tokens": (at_least(1), ">= 1"),
    "lora_r": (at_least(1), ">= 1"),
    "lora_alpha": ((lambda v: finite(v) and v > 0), "> 0"),
    "lora_dropout": ((lambda v: finite(v) and 0 <= v < 1), "in [0, 1)"),
    "logging_steps": (at_least(1), ">= 1"),
    "eval_steps": (at_least(0), ">= 0 (0 = only at the end)"),
    "save_steps": (at_least(0), ">= 0 (0 = no checkpoints)"),
    "save_total_limit": (at_least(1), ">= 1"),
}


def check_objective_args(objective: str, args: dict[str, Any],
                         origins: dict[str, str] | None = None) -> dict[str, Any]:
    """``args`` coerced to each hyperparameter's declared type and checked against its range;
    unknown names are an error naming the ones the objective takes."""
    from prefalign import objectives

    origins = origins or {}
    try:
        spec = objectives.get(objective)
    except ValueError as e:
        raise ConfigError(f"{where('objective', origins)}{e}") from None
    unknown = sorted(set(args) - set(spec.defaults))
    if unknown:
        import difflib

        close = {u: difflib.get_close_matches(u, list(spec.defaults), 1) for u in unknown}
        hint = "; ".join(f"{u}: did you mean {c[0]}?" for u, c in close.items() if c)
        key = f"objective_args.{unknown[0]}"  # the line of the first unknown name, if known
        raise ConfigError(
            f"{where(key if key in origins else 'objective_args', origins)}objective "
            f"{spec.name!r} has no hyperparameter(s) "
            f"{', '.join(unknown)}; it takes: {', '.join(sorted(spec.defaults)) or 'none'}"
            + (f" ({hint})" if hint else ""))
    out = {}
    for name, value in args.items():
        try:
            out[name] = spec.hyperparameter(name).coerce(spec.name, value)
        except ValueError as e:
            origin = origins.get(f"objective_args.{name}") or origins.get("objective_args")
            raise ConfigError(f"{origin}: {e}" if origin else str(e)) from None
    return out


# ---- what each setting is, for `prefalign train --help` (and docs); defaults, types and the
# accepted values of `_RULES` are added by the CLI from the fields themselves ---------------------
FIELD_HELP: dict[str, str] = {
    "model": "the starting policy: a model folder or Hub id (required)",
    "data": "training data file or saved dataset folder: pairwise, unpaired or ranked rows "
            "(required)",
    "objective": "the training objective, a name from `prefalign objectives`",
    "output": "run folder: checkpoints, metrics.jsonl, the final model",
    "objective_args": "objective hyperparameters (YAML mapping; beta etc. also as top-level "
                      "keys; on the command line --beta etc. or --set KEY=VALUE)",
    "reference": "where reference log-probs come from (auto = none for reference-free "
                 "objectives, adapter-disabled with LoRA, else cache; cache = computed once, "
                 "cached on disk; model = a frozen copy every step)",
    "ref_model": "the reference model folder (default: the starting policy)",
    "cache_dir": "folder of the reference log-prob cache (default: OUTPUT/../.prefalign-cache)",
    "eval_data": "held-out preference data evaluated every --eval-steps and at the end",
    "max_length": "tokens per example, prompt and response; longer ones are truncated by "
                  "--truncation (default: the model's context length)",
    "max_prompt_length": "tokens of prompt kept when truncating (below --max-length)",
    "truncation": "how an over-long example is cut",
    "on_error": "a bad data row: raise (stop, naming the row) or skip (counted and reported)",
    "keep_whitespace_variants": "train on pairs whose responses differ only in whitespace (bad "
                                "rows like identical ones otherwise: --on-error decides)",
    "lr": "peak learning rate",
    "batch_size": "micro-batch size",
    "grad_accum": "micro-batches per optimizer step",
    "epochs": "passes over the data (used when --max-steps is -1)",
    "max_steps": "optimizer steps; -1 uses --epochs",
    "warmup_steps": "learning-rate warm-up steps",
    "warmup_ratio": "warm-up as a share of all steps (used when --warmup-steps is 0)",
    "scheduler": "learning-rate schedule after warm-up",
    "weight_decay": "AdamW weight decay",
    "max_grad_norm": "gradient clipping norm (0 = no clipping)",
    "adam_betas": "AdamW betas, two numbers",
    "seed": "seed of data order, dropout and initialisation",
    "dtype": "weight dtype (use --bf16 for mixed precision on GPU)",
    "bf16": "mixed precision (bfloat16 autocast) through accelerate",
    "attn_implementation": "attention kernel: auto (sdpa where the family supports it, else "
                           "eager), sdpa, eager, flex_attention (CUDA) or varlen "
                           "(padding-free; FlashAttention's varlen kernel on CUDA)",
    "router_aux_loss_coef": "MoE router load-balancing loss weight (default: the model config's "
                            "when it outputs router logits, else off; 0 = off)",
    "gradient_checkpointing": "recompute activations in the backward pass to save memory",
    "chunk_tokens": "tokens per chunk of the chunked LM head (log-probs without the full "
                    "logits tensor)",
    "row_tokens": "tokens per packed row (default: the longest example; FlexAttention packs each "
                  "micro-batch into one row of a bucketed width instead)",
    "max_tokens_per_batch": "split each step's examples into micro-batches of at most this many "
                            "tokens (prompt once + responses) instead of --batch-size examples; "
                            "the step, its loss and its gradient stay the same (default: off)",
    "ref_batch_tokens": "tokens per forward pass when computing reference log-probs",
    "disable_dropout": "turn dropout off in policy and reference",
    "lora": "train a LoRA adapter instead of all weights",
    "lora_r": "LoRA rank",
    "lora_alpha": "LoRA alpha (scale = alpha / r)",
    "lora_dropout": "LoRA dropout",
    "lora_target_modules": "modules that get adapters: all-linear, or module names (a YAML list "
                           "or comma-separated, e.g. q_proj,v_proj)",
    "qlora": "LoRA on a 4-bit quantized base (bitsandbytes, CUDA)",
    "merge_lora": "merge the adapter into the saved final model",
    "logging_steps": "optimizer steps between metrics.jsonl lines",
    "eval_steps": "optimizer steps between evaluations of --eval-data (0 = only at the end)",
    "save_steps": "optimizer steps between checkpoints (0 = no checkpoints)",
    "save_total_limit": "checkpoints kept (older ones deleted)",
    "resume": "resume the same run from its last checkpoint in --output",
    "overwrite": "delete what an earlier run left in --output and train from the start",
    "report_to": "trackers, comma-separated: tensorboard, wandb",
    "progress": "show a progress bar",
    "trust_remote_code": "run a model's own code from its folder (off unless turned on)",
}


TrainConfig.HELP = FIELD_HELP
TrainConfig.RULES = _RULES
TrainConfig.NO_FLAG = frozenset({"objective_args"})  # --beta etc. and --set KEY=VALUE
# Objective hyperparameters with a flag (and a top-level YAML key) of their own, TRL's names;
# the others go in objective_args (or --set KEY=VALUE).
TrainConfig.ROUTED = {
    **{name: Routed(("objective_args", name), float, f"objective hyperparameter {name}, for the "
                    "objectives that take it (default: the objective's, see `prefalign "
                    "objectives`)")
       for name in ("beta", "label_smoothing", "simpo_gamma", "ld_alpha", "rpo_alpha")},
    "no_reference": Routed(("reference",), bool, "train without a reference model "
                           "(reference-free objectives only); the same as --reference none",
                           const="none"),
}
TrainConfig.REQUIRED = ("model", "data")
TrainConfig.KNOWN_AS = {  # TRL's / transformers' TrainingArguments names
    "learning_rate": "lr", "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum", "num_train_epochs": "epochs",
    "lr_scheduler_type": "scheduler", "output_dir": "output", "model_name_or_path": "model",
    "loss_type": "objective", "ref_model_name_or_path": "ref_model",
    "gradient_checkpointing_kwargs": "gradient_checkpointing",
    "dataset": "data", "train_dataset": "data", "eval_dataset": "eval_data",
}
