"""Training configuration: one dataclass, read from YAML, overridden by command-line flags.

Every value is coerced to its field's declared type and checked against its meaning before
any model loads (:meth:`TrainConfig.validate`): counts and the learning rate positive,
``max_steps`` -1 ("use epochs") or positive, objective hyperparameters in their declared
ranges. Errors are :class:`ConfigError` (a ``ValueError``: ``prefalign train`` prints it as one
line) naming the setting, the file and line or flag it came from, and what it accepts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefalign.core.settings import (ConfigError, Routed, Settings, at_least, finite, one_of,
                                     optional, positive, setting, subject, where)

__all__ = ["TrainConfig", "ConfigError", "check_objective_args"]


def _dtypes() -> tuple[str, ...]:
    return ("float32", "bfloat16", "float16")


@dataclass
class TrainConfig(Settings):
    # Each field's help is what it is, for `prefalign train --help` and docs/cli.md; its type,
    # its default and its rule's accepted values are added by the CLI from the field itself.
    # what to train
    model: str = setting("", help="the starting policy: a model folder or Hub id (required)")
    data: str = setting("", help="training data file or saved dataset folder: pairwise, unpaired "
                                 "or ranked rows (required)")
    objective: str = setting("sigmoid", help="the training objective, a name from "
                                             "`prefalign objectives`, or a weighted mixture: "
                                             "a,b,c (with --objective-weights) or 0.8*a+0.2*b")
    objective_weights: list[float] | None = setting(
        None, help="the weights of a mixture --objective a,b,c, one per term (TRL's "
                   "loss_weights; default: 1 each)")
    output: str = setting("runs/train",
                          help="run folder: checkpoints, metrics.jsonl, the final model")
    objective_args: dict[str, Any] = setting(  # beta etc. go here too
        factory=dict, help="objective hyperparameters (YAML mapping; beta etc. also as top-level "
                           "keys; on the command line --beta etc. or --set KEY=VALUE)")
    # reference: "auto" = none for reference-free objectives, "adapter-disabled" with LoRA,
    # otherwise "cache" (computed once, cached on disk); "model" = a frozen copy every step
    reference: str = setting(
        "auto", help="where reference log-probs come from (auto = none for reference-free "
                     "objectives, adapter-disabled with LoRA, else cache; cache = computed once, "
                     "cached on disk; model = a frozen copy every step)",
        rule=one_of("auto", "cache", "model", "adapter-disabled", "none"))
    ref_model: str | list[str] | None = setting(  # default: the starting policy
        None, help="the reference model folder (default: the starting policy); give it again "
                   "for more references (mrpo: the first is the main one)")
    ref_update: str = setting(
        "none", help="TR-DPO: move the reference toward the policy every --ref-update-steps: "
                     "soft (θ_ref ← α·θ + (1 − α)·θ_ref) or hard (θ_ref ← θ); none keeps it "
                     "fixed. The reference is then a model run every step, not the cache",
        rule=one_of("none", "soft", "hard"))
    ref_update_steps: int = setting(512, help="optimizer steps between reference updates "
                                    "(TR-DPO's τ; TRL's ref_model_sync_steps)",
                                    rule=(at_least(1), ">= 1"))
    ref_update_alpha: float = setting(
        0.6, help="α of a soft reference update (TRL's ref_model_mixup_alpha)",
        rule=(lambda v: finite(v) and 0 < v <= 1, "in (0, 1]"))
    cache_dir: str | None = setting(  # default: OUTPUT/../.prefalign-cache
        None, help="folder of the reference log-prob cache (default: "
                   "OUTPUT/../.prefalign-cache)")
    # data
    eval_data: str | None = setting(
        None, help="held-out preference data evaluated every --eval-steps and at the end")
    max_length: int | None = setting(
        None, help="tokens per example, prompt and response; longer ones are truncated by "
                   "--truncation (default: the model's context length)",
        rule=(optional(at_least(2)), ">= 2 (one prompt and one response token), or null"))
    max_prompt_length: int | None = setting(
        None, help="tokens of prompt kept when truncating (below --max-length)",
        rule=(optional(at_least(1)), ">= 1, or null"))
    truncation: str = setting("keep_start", help="how an over-long example is cut",
                              rule=one_of("keep_start", "truncate_prompt_left", "drop"))
    on_error: str = setting(
        "raise", help="a bad data row: raise (stop, naming the row) or skip (counted and "
                      "reported)",
        rule=one_of("raise", "skip"))
    keep_whitespace_variants: bool = setting(
        False, help="train on pairs whose responses differ only in whitespace (bad rows like "
                    "identical ones otherwise: --on-error decides)")
    # optimisation
    lr: float = setting(5e-6, help="peak learning rate", rule=(positive, "a finite number > 0"))
    batch_size: int = setting(  # examples (pairs) per device per micro-batch
        4, help="micro-batch size",
        rule=(at_least(1), ">= 1 (pairs per device per micro-batch)"))
    grad_accum: int = setting(1, help="micro-batches per optimizer step",
                              rule=(at_least(1), ">= 1"))
    epochs: float = setting(1.0, help="passes over the data (used when --max-steps is -1)",
                            rule=(positive, "a finite number > 0"))
    max_steps: int = setting(
        -1, help="optimizer steps; -1 uses --epochs",
        rule=((lambda v: v == -1 or (finite(v) and v >= 1)), ">= 1, or -1 to use epochs"))
    warmup_steps: int = setting(0, help="learning-rate warm-up steps", rule=(at_least(0), ">= 0"))
    warmup_ratio: float = setting(
        0.0, help="warm-up as a share of all steps (used when --warmup-steps is 0)",
        rule=((lambda v: finite(v) and 0 <= v < 1), "in [0, 1)"))
    scheduler: str = setting(  # linear | cosine | constant
        "linear", help="learning-rate schedule after warm-up",
        rule=one_of("linear", "cosine", "constant"))
    weight_decay: float = setting(0.0, help="AdamW weight decay",
                                  rule=(at_least(0), "a finite number >= 0"))
    max_grad_norm: float = setting(1.0, help="gradient clipping norm (0 = no clipping)",
                                   rule=(at_least(0), "a finite number >= 0 (0 = no clipping)"))
    adam_betas: tuple[float, float] = setting(
        (0.9, 0.999), help="AdamW betas, two numbers",
        rule=((lambda v: len(v) == 2 and all(finite(b) and 0 <= b < 1 for b in v)),
              "two numbers in [0, 1)"))
    seed: int = setting(0, help="seed of data order, dropout and initialisation")
    order: str = setting(
        "shuffle", help="example order in each epoch: shuffle, or curriculum (the data's "
        "curriculum column ascending, easy to hard, shuffled within a level: Curry-DPO; "
        "prefalign synth --pairs curriculum writes it)", rule=one_of("shuffle", "curriculum"))
    pair_weight: str | None = setting(
        None, help="a data column weighting each example's loss, e.g. strength (a jury's "
        "agreement from prefalign synth); a step's loss is then the weighted mean (default: "
        "none, every example weighs the same)")
    # engine
    dtype: str = setting(  # float32 | bfloat16 (weights); use bf16 for autocast on GPU
        "float32", help="weight dtype (use --bf16 for mixed precision on GPU)",
        rule=one_of(*_dtypes()))
    bf16: bool = setting(  # mixed precision (autocast) through accelerate
        False, help="mixed precision (bfloat16 autocast) through accelerate")
    # auto: sdpa where the family supports it, else eager (Gemma-2, GPT-OSS); or sdpa | eager |
    # flex_attention (CUDA)
    attn_implementation: str = setting(
        "auto", help="attention kernel: auto (sdpa where the family supports it, else eager), "
                     "sdpa, eager, flex_attention (CUDA) or varlen (padding-free; "
                     "FlashAttention's varlen kernel on CUDA)")
    # MoE router load-balancing loss weight, like TRL: None = the model config's
    # router_aux_loss_coef when its output_router_logits is set, else off; 0 = off
    router_aux_loss_coef: float | None = setting(
        None, help="MoE router load-balancing loss weight (default: the model config's when it "
                   "outputs router logits, else off; 0 = off)",
        rule=(optional(at_least(0)), "a finite number >= 0, or null"))
    gradient_checkpointing: bool = setting(
        False, help="recompute activations in the backward pass to save memory")
    chunk_tokens: int = setting(
        1024, help="tokens per chunk of the chunked LM head (log-probs without the full logits "
                   "tensor)",
        rule=(at_least(1), ">= 1"))
    row_tokens: int | None = setting(  # tokens per packed row (default: the longest example)
        None, help="tokens per packed row (default: the longest example; FlexAttention packs "
                   "each micro-batch into one row of a bucketed width instead)",
        rule=(optional(at_least(1)), ">= 1, or null"))
    # micro-batches by tokens instead of --batch-size examples (the step's examples unchanged)
    max_tokens_per_batch: int | None = setting(
        None, help="split each step's examples into micro-batches of at most this many tokens "
                   "(prompt once + responses) instead of --batch-size examples; the step, its "
                   "loss and its gradient stay the same (default: off)",
        rule=(optional(at_least(1)), ">= 1, or null"))
    ref_batch_tokens: int = setting(
        8192, help="tokens per forward pass when computing reference log-probs",
        rule=(at_least(1), ">= 1"))
    disable_dropout: bool = setting(True, help="turn dropout off in policy and reference")
    # LoRA / QLoRA
    lora: bool = setting(False, help="train a LoRA adapter instead of all weights")
    lora_r: int = setting(16, help="LoRA rank", rule=(at_least(1), ">= 1"))
    lora_alpha: int = setting(32, help="LoRA alpha (scale = alpha / r)",
                              rule=((lambda v: finite(v) and v > 0), "> 0"))
    lora_dropout: float = setting(0.0, help="LoRA dropout",
                                  rule=((lambda v: finite(v) and 0 <= v < 1), "in [0, 1)"))
    lora_target_modules: list[str] | str = setting(
        "all-linear", help="modules that get adapters: all-linear, or module names (a YAML list "
                           "or comma-separated, e.g. q_proj,v_proj)")
    qlora: bool = setting(False, help="LoRA on a 4-bit quantized base (bitsandbytes, CUDA)")
    merge_lora: bool = setting(False, help="merge the adapter into the saved final model")
    # bookkeeping
    logging_steps: int = setting(1, help="optimizer steps between metrics.jsonl lines",
                                 rule=(at_least(1), ">= 1"))
    eval_steps: int = setting(
        0, help="optimizer steps between evaluations of --eval-data (0 = only at the end)",
        rule=(at_least(0), ">= 0 (0 = only at the end)"))
    save_steps: int = setting(0, help="optimizer steps between checkpoints (0 = no checkpoints)",
                              rule=(at_least(0), ">= 0 (0 = no checkpoints)"))
    save_total_limit: int = setting(2, help="checkpoints kept (older ones deleted)",
                                    rule=(at_least(1), ">= 1"))
    # False: never resume a checkpoint (an existing run is then refused)
    resume: bool = setting(True, help="resume the same run from its last checkpoint in --output")
    # delete what an earlier run left in OUTPUT (checkpoints, metrics, model) and start over
    overwrite: bool = setting(
        False, help="delete what an earlier run left in --output and train from the start")
    report_to: list[str] = setting(factory=list,  # tensorboard, wandb
                                   help="trackers, comma-separated: tensorboard, wandb")
    progress: bool = setting(True, help="show a progress bar")
    trust_remote_code: bool = setting(
        False, help="run a model's own code from its folder (off unless turned on)")

    def check(self, origins: dict[str, str]) -> None:
        """Across fields: the prompt limit below the example limit; objective hyperparameters
        (``objective_args``) in the objective's declared ranges."""
        if self.max_length is not None and self.max_prompt_length is not None \
                and self.max_prompt_length >= self.max_length:
            raise ConfigError(f"{where('max_prompt_length', origins)}max_prompt_length "
                              f"({self.max_prompt_length}) must be below max_length "
                              f"({self.max_length}) to leave room for the response")
        from prefalign.objectives.mixture import is_mixture, mixture_name

        if self.objective_weights is not None or is_mixture(self.objective):
            try:  # one name from here on: 0.8*sigmoid+0.2*bco_pair+1*sft
                self.objective = mixture_name(self.objective, self.objective_weights)
            except ValueError as e:
                raise ConfigError(f"{where('objective', origins)}{e}") from None
            self.objective_weights = None
        self.objective_args = check_objective_args(self.objective, self.objective_args, origins)
        if isinstance(self.ref_model, list):  # --ref-model given once is one folder
            if any(not isinstance(m, str) or not m.strip() for m in self.ref_model):
                raise ConfigError(f"{subject('ref_model', origins)} must be model folders, got "
                                  f"{self.ref_model!r}")
            self.ref_model = (None if not self.ref_model else self.ref_model[0]
                              if len(self.ref_model) == 1 else self.ref_model)
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
    def ref_models(self) -> list[str]:
        """Every reference model given, the main one first (empty: the starting policy)."""
        if self.ref_model is None:
            return []
        return [self.ref_model] if isinstance(self.ref_model, str) else list(self.ref_model)

    @property
    def main_ref_model(self) -> str | None:
        """The (main) reference model folder; None: the starting policy."""
        return (self.ref_models or [None])[0]

    @property
    def output_dir(self) -> Path:
        return Path(self.output)


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
TrainConfig.REPEATED = frozenset({"ref_model"})  # several references: mrpo
TrainConfig.KNOWN_AS = {  # TRL's / transformers' TrainingArguments names
    "learning_rate": "lr", "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum", "num_train_epochs": "epochs",
    "lr_scheduler_type": "scheduler", "output_dir": "output", "model_name_or_path": "model",
    "loss_type": "objective", "ref_model_name_or_path": "ref_model",
    "gradient_checkpointing_kwargs": "gradient_checkpointing",
    "dataset": "data", "train_dataset": "data", "eval_dataset": "eval_data",
}
