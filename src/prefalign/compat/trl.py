"""TRL's Python API on prefalign's trainer: change ``from trl import`` to
``from prefalign.compat.trl import`` and a TRL 1.x DPO or KTO script runs on prefalign.

    from prefalign.compat.trl import DPOConfig, DPOTrainer

Nothing here imports TRL. One table, :data:`FIELDS`, says what every TRL config field becomes
(a :class:`~prefalign.train.TrainConfig` field, an objective hyperparameter) or why it is
refused; :class:`DPOConfig`/:class:`KTOConfig` and :func:`translate_yaml` (``trl dpo --config
FILE`` YAML) both read it. A field left at TRL's default is accepted whatever it is; a field
prefalign cannot honour, set to anything else, is refused with a message naming it. Fields follow
TRL 1.x (``loss_type`` a list, ``truncation_mode`` keep_start); TRL 0.x's ``max_prompt_length``
and ``rpo_alpha`` are accepted as well (docs/trl.md).

The trainers hand prefalign paths: an in-memory model, tokenizer or data set is saved under
``output_dir/prefalign-inputs`` first, prefalign's run folder is ``output_dir/prefalign-run``
(metrics.jsonl, checkpoints, the final model in ``model/``), and after training the trained weights are loaded back
into the model object the caller passed (``trainer.model``), as TRL leaves it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)
__all__ = ["DPOConfig", "DPOTrainer", "KTOConfig", "KTOTrainer", "FIELDS", "translate_yaml",
           "UnsupportedFieldError", "TRL_METRIC_NAMES", "is_trl_config"]


class UnsupportedFieldError(ValueError):
    """A TRL field (or value) prefalign does not support; the message names it and says why."""


@dataclass(frozen=True)
class Field:
    """One TRL field: its TRL 1.x default, and either ``to`` (how a value becomes prefalign
    settings: a function value -> {TrainConfig key or "objective_args.NAME": value}) or
    ``refused`` (why any value but the default is refused). ``trainers``: which configs have it."""
    default: Any
    to: Callable[[Any], dict[str, Any]] | None = None
    refused: str | None = None
    trainers: tuple[str, ...] = ("dpo", "kto")
    note: str = ""


def _as(name: str, convert: Callable[[Any], Any] = lambda v: v) -> Callable[[Any], dict]:
    return lambda v: {name: convert(v)}


def _scheduler(v: str) -> dict:
    kinds = {"linear": "linear", "cosine": "cosine", "constant": "constant",
             "constant_with_warmup": "constant"}
    if v not in kinds:
        raise UnsupportedFieldError(
            f"lr_scheduler_type={v!r} is not supported: prefalign has linear, cosine and "
            "constant (constant_with_warmup is constant after the warm-up)")
    return {"scheduler": kinds[v]}


def _truncation(v: str) -> dict:
    if v != "keep_start":
        raise UnsupportedFieldError(
            f"truncation_mode={v!r} is not supported: TRL 1.x deprecates keep_end and keeps "
            "only keep_start, which is prefalign's truncation (keep_start)")
    return {"truncation": "keep_start"}


def _logging_steps(v: Any) -> dict:
    if float(v) < 1 or float(v) != int(v):
        raise UnsupportedFieldError(f"logging_steps={v!r}: a share of all steps (below 1) is "
                                    "not supported; give a whole number of steps")
    return {"logging_steps": int(v)}


def _save_steps(v: Any) -> dict:
    if float(v) < 1 or float(v) != int(v):
        raise UnsupportedFieldError(f"save_steps={v!r}: a share of all steps is not supported")
    return {"save_steps": int(v)}


def _save_strategy(v: Any) -> dict:
    v = str(getattr(v, "value", v))
    if v == "no":
        return {"save_steps": 0}
    if v == "steps":
        return {}
    raise UnsupportedFieldError(f"save_strategy={v!r} is not supported: use 'steps' (with "
                                "save_steps) or 'no'")


def _report_to(v: Any) -> dict:
    names = [v] if isinstance(v, str) else list(v or [])
    names = [n for n in names if n not in ("none", None)]
    if names == ["all"]:
        names = ["tensorboard"]
    bad = [n for n in names if n not in ("tensorboard", "wandb")]
    if bad:
        raise UnsupportedFieldError(f"report_to={bad}: prefalign reports to tensorboard and wandb")
    return {"report_to": names}


def _loss_type(v: Any) -> dict:
    names = [v] if isinstance(v, str) else list(v)
    if not names:
        raise UnsupportedFieldError("loss_type is empty: name at least one loss type")
    return {"objective": ",".join(names)}


def _reference_update(v: bool) -> dict:
    return {"ref_update": "soft" if v else "none"}


def _precompute(v: bool) -> dict:
    # False (TRL's frozen copy every step) and True give the same log-probs; prefalign's
    # default computes them once and caches them, so only True is pinned to the cache
    return {"reference": "cache"} if v else {}


def _no_effect(name: str) -> Callable[[Any], dict]:
    return lambda v: {}


_ADAM = {"adamw_torch", "adamw_torch_fused", "adamw_hf"}


def _optim(v: Any) -> dict:
    v = str(getattr(v, "value", v))
    if v not in _ADAM:
        raise UnsupportedFieldError(f"optim={v!r} is not supported: prefalign trains with "
                                    "torch.optim.AdamW (adamw_torch)")
    return {}


# TRL field -> what it becomes. Defaults are TRL 1.x's (DPOConfig / KTOConfig, over
# transformers.TrainingArguments). docs/trl.md is this table in words.
FIELDS: dict[str, Field] = {
    # the run
    "output_dir": Field(None, _as("output")),
    "seed": Field(42, _as("seed", int)),
    "overwrite_output_dir": Field(False, _as("overwrite", bool)),
    # optimisation
    "learning_rate": Field(1e-6, _as("lr", float)),
    "per_device_train_batch_size": Field(8, _as("batch_size", int)),
    "gradient_accumulation_steps": Field(1, _as("grad_accum", int)),
    "num_train_epochs": Field(3.0, _as("epochs", float)),
    "max_steps": Field(-1, _as("max_steps", int)),
    "lr_scheduler_type": Field("linear", _scheduler),
    "warmup_ratio": Field(0.0, _as("warmup_ratio", float)),
    "warmup_steps": Field(0, _as("warmup_steps", int)),
    "weight_decay": Field(0.0, _as("weight_decay", float)),
    "max_grad_norm": Field(1.0, _as("max_grad_norm", float)),
    "adam_beta1": Field(0.9, _as("adam_beta1", float)),
    "adam_beta2": Field(0.999, _as("adam_beta2", float)),
    "optim": Field("adamw_torch_fused", _optim),
    # precision and memory
    "bf16": Field(True, _as("bf16", bool), note="TRL 1.x turns bf16 on by default (unless fp16)"),
    "gradient_checkpointing": Field(True, _as("gradient_checkpointing", bool),
                                    note="TRL 1.x turns it on by default"),
    "trust_remote_code": Field(False, _as("trust_remote_code", bool)),
    "router_aux_loss_coef": Field(None, _as("router_aux_loss_coef")),
    "disable_dropout": Field(True, _as("disable_dropout", bool)),
    # bookkeeping
    "logging_steps": Field(10, _logging_steps),
    "save_steps": Field(500, _save_steps),
    "save_strategy": Field("steps", _save_strategy),
    "save_total_limit": Field(None, lambda v: {} if v is None else {"save_total_limit": int(v)}),
    "eval_steps": Field(None, lambda v: {} if v is None else {"eval_steps": int(v)}),
    "report_to": Field("none", _report_to),
    "disable_tqdm": Field(None, lambda v: {"progress": not v} if v is not None else {}),
    "use_cpu": Field(False, _no_effect("use_cpu"),
                     note="accepted: prefalign picks the device itself (CPU without a GPU)"),
    "dataset_num_proc": Field(None, _no_effect("dataset_num_proc"),
                              note="accepted, no effect: prefalign tokenizes in-process"),
    "pad_to_multiple_of": Field("auto", _no_effect("pad_to_multiple_of"),
                                note="accepted, no effect: prefalign packs rows, it does not pad"),
    "dataloader_num_workers": Field(0, _no_effect("dataloader_num_workers"),
                                    note="accepted, no effect: batches are built in-process"),
    # data
    "max_length": Field(1024, _as("max_length")),
    "max_prompt_length": Field(None, _as("max_prompt_length"),
                               note="TRL 0.x only (removed in TRL 1.x); accepted"),
    "truncation_mode": Field("keep_start", _truncation),
    # the reference
    "precompute_ref_log_probs": Field(False, _precompute),
    "sync_ref_model": Field(False, _reference_update),
    "ref_model_mixup_alpha": Field(0.6, _as("ref_update_alpha", float)),
    "ref_model_sync_steps": Field(512, _as("ref_update_steps", int)),
    # the loss
    "beta": Field(0.1, _as("objective_args.beta", float)),
    "loss_type": Field(["sigmoid"], _loss_type, trainers=("dpo",)),
    "loss_weights": Field(None, lambda v: {} if v is None else
                          {"objective_weights": [float(w) for w in v]}, trainers=("dpo",)),
    "label_smoothing": Field(0.0, _as("objective_args.label_smoothing", float),
                             trainers=("dpo",)),
    "use_weighting": Field(False, _as("objective_args.use_weighting", bool), trainers=("dpo",)),
    "ld_alpha": Field(None, _as("objective_args.ld_alpha"), trainers=("dpo",)),
    "f_divergence_type": Field("reverse_kl", _as("objective_args.f_divergence_type", str),
                               trainers=("dpo",)),
    "f_alpha_divergence_coef": Field(0.5, _as("objective_args.f_alpha_divergence_coef", float),
                                     trainers=("dpo",)),
    "discopop_tau": Field(0.05, _as("objective_args.discopop_tau", float), trainers=("dpo",)),
    "rpo_alpha": Field(None, lambda v: {} if v is None else {"rpo_alpha": float(v)},
                       trainers=("dpo",),
                       note="TRL 0.x only (TRL 1.x: loss_type=['sigmoid', 'sft'] with "
                            "loss_weights); accepted with loss_type ['sigmoid'] as prefalign's rpo"),
    "desirable_weight": Field(1.0, _as("objective_args.desirable_weight", float),
                              trainers=("kto",)),
    "undesirable_weight": Field(1.0, _as("objective_args.undesirable_weight", float),
                                trainers=("kto",)),
    # (KTO's loss_type is a string: kto or apo_zero_unpaired; see _KTO_LOSS)
    "train_sampling_strategy": Field("sequential", refused=(
        "prefalign builds KTO's KL pairs itself, in its own order; only TRL's default "
        "'sequential' is accepted"), trainers=("kto",)),
    # refused when set
    "fp16": Field(False, refused="prefalign's mixed precision is bf16 (bf16=True)"),
    "padding_free": Field(False, refused="use prefalign's attn_implementation='varlen' through "
                                         "`prefalign train`; not mapped here"),
    "model_init_kwargs": Field(None, refused="prefalign loads the model itself; pass a loaded "
                                             "model object instead"),
    "activation_offloading": Field(False, refused="not implemented in prefalign"),
    "precompute_ref_batch_size": Field(None, refused="prefalign sizes the reference pass in "
                                                     "tokens (ref_batch_tokens in TrainConfig)"),
    "lr_scheduler_kwargs": Field(None, refused="prefalign's schedules take no extra arguments"),
    "gradient_checkpointing_kwargs": Field(None, refused="prefalign's gradient checkpointing "
                                                         "takes no extra arguments"),
    "use_liger_kernel": Field(False, refused="prefalign has its own chunked LM head; Liger is "
                                             "not used"),
    "torch_empty_cache_steps": Field(None, refused="not implemented in prefalign"),
    "pad_token": Field(None, refused="deprecated in TRL 1.x; set tokenizer.pad_token instead"),
    "push_to_hub": Field(False, refused="prefalign runs offline; upload OUTPUT/model yourself"),
    "hub_model_id": Field(None, refused="prefalign runs offline"),
    "deepspeed": Field(None, refused="launch `prefalign train` with `accelerate launch` and a "
                                     "DeepSpeed config instead"),
    "fsdp": Field(None, refused="launch `prefalign train` with `accelerate launch` and an FSDP "
                                "config instead"),
    "torch_compile": Field(False, refused="not supported by prefalign's trainer"),
    "eval_strategy": Field("no", lambda v: {}, note="prefalign evaluates eval_dataset every "
                                                   "eval_steps (0: at the end)"),
    "per_device_eval_batch_size": Field(8, lambda v: {}, note="accepted, no effect: evaluation "
                                                             "uses per_device_train_batch_size"),
}
_KTO_LOSS = ("kto", "apo_zero_unpaired")

# prefalign metric -> TRL's name for it (prefalign's name is logged too)
TRL_METRIC_NAMES = {"rewards/accuracy": "rewards/accuracies", "rewards/margin": "rewards/margins",
                    "lr": "learning_rate"}
_KTO_METRIC_NAMES = {"rewards/desirable": "rewards/chosen",
                     "rewards/undesirable": "rewards/rejected"}


def _transformers_defaults() -> dict[str, Any]:
    from transformers import TrainingArguments

    return {f.name: f.default for f in dataclasses.fields(TrainingArguments)
            if f.default is not dataclasses.MISSING}


def _same(a: Any, b: Any) -> bool:
    a, b = getattr(a, "value", a), getattr(b, "value", b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b or (a in (None, "none", []) and b in (None, "none", []))


def translate(values: dict[str, Any], trainer: str = "dpo") -> dict[str, Any]:
    """TRL config values -> ``TrainConfig`` keyword values (``objective_args`` a dict), by
    :data:`FIELDS`. Refuses (``UnsupportedFieldError``, naming the field) a refused field not at
    its default, a TrainingArguments field prefalign does not map set to another value than
    transformers' default, and a name neither TRL nor transformers has."""
    out: dict[str, Any] = {"objective_args": {}}
    known = None
    values = dict(values)
    if trainer == "kto":
        loss = values.pop("loss_type", "kto")
        if loss not in _KTO_LOSS:
            raise UnsupportedFieldError(f"loss_type={loss!r}: KTOConfig takes {_KTO_LOSS}")
        out["objective"] = loss
    else:
        out["objective"] = "sigmoid"
    for name, value in values.items():
        spec = FIELDS.get(name)
        if spec is not None and trainer not in spec.trainers:
            spec = None
        if spec is None:
            known = known if known is not None else _transformers_defaults()
            if name in known:
                if _same(value, known[name]):
                    continue
                raise UnsupportedFieldError(
                    f"{name}={value!r} is not supported by prefalign.compat.trl (a "
                    "transformers.TrainingArguments field prefalign does not map; leave it at "
                    f"its default {known[name]!r}); see docs/trl.md")
            raise UnsupportedFieldError(f"{name}: not a field of TRL's "
                                        f"{'KTOConfig' if trainer == 'kto' else 'DPOConfig'}")
        if spec.refused:
            if _same(value, spec.default):
                continue
            raise UnsupportedFieldError(f"{name}={value!r} is not supported: {spec.refused}")
        for key, v in spec.to(value).items():
            if key.startswith("objective_args."):
                if v is not None:
                    out["objective_args"][key.split(".", 1)[1]] = v
            else:
                out[key] = v
    # defaults of TRL that differ from prefalign's apply even when not given
    for name in ("learning_rate", "per_device_train_batch_size", "num_train_epochs",
                 "logging_steps", "save_steps", "seed", "bf16", "gradient_checkpointing",
                 "max_length"):
        if name not in values and trainer in FIELDS[name].trainers:
            out.update(FIELDS[name].to(FIELDS[name].default))
    _finish(out, values)
    return out


def _finish(out: dict[str, Any], values: dict[str, Any]) -> None:
    """Cross-field mappings: Adam's betas, rpo_alpha, what the objective does not take."""
    b1, b2 = out.pop("adam_beta1", 0.9), out.pop("adam_beta2", 0.999)
    if (b1, b2) != (0.9, 0.999):
        out["adam_betas"] = (b1, b2)
    rpo = out.pop("rpo_alpha", None)
    if rpo is not None:
        if out["objective"] != "sigmoid":
            raise UnsupportedFieldError(
                f"rpo_alpha with loss_type {out['objective']!r}: TRL 1.x removed rpo_alpha; "
                "add 'sft' to loss_type with its weight in loss_weights instead")
        out["objective"] = "rpo"
        out["objective_args"]["rpo_alpha"] = rpo
    if out.get("ref_update", "none") == "none":
        out.pop("ref_update_alpha", None), out.pop("ref_update_steps", None)
    # hyperparameters at TRL's default that this objective does not take are dropped; any other
    # value is refused by TrainConfig's own check (naming the objective and what it takes)
    from prefalign import objectives

    try:
        spec = objectives.get(out["objective"] if not out.get("objective_weights") else
                              _mixture(out["objective"], out["objective_weights"]))
        takes = set(spec.defaults)
    except ValueError:
        return  # TrainConfig names the bad objective
    for name in list(out["objective_args"]):
        if name not in takes and _same(out["objective_args"][name], FIELDS[name].default):
            del out["objective_args"][name]
    if "label_smoothing" in out["objective_args"] and "label_smoothing" not in takes:
        raise UnsupportedFieldError(
            f"label_smoothing={out['objective_args']['label_smoothing']!r}: loss_type "
            f"{values.get('loss_type', 'sigmoid')!r} has no label smoothing in prefalign (robust, "
            "exo_pair, cdpo, aot and simpo take it); see `prefalign objectives`")


def _mixture(objective: str, weights) -> str:
    from prefalign.objectives.mixture import mixture_name

    return mixture_name(objective, weights)


def translate_yaml(mapping: dict[str, Any], trainer: str = "dpo") -> dict[str, Any]:
    """A TRL YAML config (``trl dpo --config FILE``: TRL's field names, plus the script's
    ``model_name_or_path``, ``dataset_name`` and peft keys) -> ``prefalign train`` YAML keys,
    with :data:`FIELDS`' mapping and refusals. Keys prefalign already has pass through."""
    from prefalign.train.config import TrainConfig

    mapping = dict(mapping)
    script = {"model_name_or_path": "model", "dataset_name": "data",
              "dataset_train_split": None, "ref_model_name_or_path": "ref_model"}
    lora = {"use_peft": "lora", "lora_r": "lora_r", "lora_alpha": "lora_alpha",
            "lora_dropout": "lora_dropout", "lora_target_modules": "lora_target_modules"}
    out: dict[str, Any] = {}
    for key, target in {**script, **lora}.items():
        if key in mapping:
            value = mapping.pop(key)
            if target is None:
                if value not in (None, "train"):
                    raise UnsupportedFieldError(f"{key}={value!r}: prefalign trains on the "
                                                "train split of a saved dataset folder")
                continue
            out[target] = value
    ours = {f.name for f in dataclasses.fields(TrainConfig)} | set(TrainConfig.ROUTED)
    passthrough = {k: mapping.pop(k) for k in list(mapping)
                   if k in ours and k not in FIELDS}
    trl = translate(mapping, trainer)
    # defaults filled in by translate are TRL's: kept, as `trl dpo` would use them
    args = trl.pop("objective_args")
    out.update(trl)
    out.update(passthrough)
    if args:
        out["objective_args"] = {**args, **out.get("objective_args", {})}
    if isinstance(out.get("objective"), str) and out.get("objective_weights"):
        pass
    return out


def is_trl_config(mapping: dict[str, Any]) -> bool:
    """Whether a YAML mapping is a TRL config: it has a key that TRL has and prefalign's
    ``TrainConfig`` does not (``learning_rate``, ``loss_type``, ``model_name_or_path``, …)."""
    from prefalign.train.config import TrainConfig

    ours = {f.name for f in dataclasses.fields(TrainConfig)} | set(TrainConfig.ROUTED)
    trl_only = (set(FIELDS) | {"model_name_or_path", "dataset_name", "use_peft"}) - ours
    return any(k in trl_only for k in mapping)


# ---- the configs ---------------------------------------------------------------------------

class _Config:
    """TRL-style config: attributes with TRL's defaults, checked against :data:`FIELDS` when
    made (an unsupported field is refused here, as early as TRL refuses a bad one)."""
    _trainer = "dpo"

    def __init__(self, output_dir: str | None = None, **kwargs: Any):
        if self._trainer == "dpo" and isinstance(kwargs.get("loss_type"), str):
            kwargs["loss_type"] = [kwargs["loss_type"]]  # TRL 1.x accepts a string too
        lt, lw = kwargs.get("loss_type"), kwargs.get("loss_weights")
        if lw is not None and len(lw) != len(lt or ["sigmoid"]):
            raise ValueError(f"loss_weights has {len(lw)} weights for "
                             f"{len(lt or ['sigmoid'])} loss types; give one per loss type")
        given = {"output_dir": output_dir or "trainer_output", **kwargs}
        self._given = given
        self._settings = translate(given, self._trainer)  # refuses here
        for name, spec in FIELDS.items():
            if self._trainer in spec.trainers:
                setattr(self, name, spec.default)
        if self._trainer == "kto":
            self.loss_type = "kto"
        for name, value in given.items():
            setattr(self, name, value)

    def to_train_config_values(self) -> dict[str, Any]:
        """The :class:`~prefalign.train.TrainConfig` values these settings become."""
        out = dict(self._settings)
        out["objective_args"] = dict(out["objective_args"])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._given.items())})"


class DPOConfig(_Config):
    """TRL's ``DPOConfig``: the same field names and TRL 1.x defaults (docs/trl.md)."""
    _trainer = "dpo"


class KTOConfig(_Config):
    """TRL's ``KTOConfig``: the same field names and TRL 1.x defaults (docs/trl.md)."""
    _trainer = "kto"


# ---- the trainers --------------------------------------------------------------------------

def _lora_settings(peft_config) -> dict[str, Any]:
    """A peft ``LoraConfig`` -> prefalign's lora settings; what prefalign has no setting for is
    refused when it differs from LoraConfig's default."""
    if peft_config is None:
        return {}
    if type(peft_config).__name__ != "LoraConfig":
        raise UnsupportedFieldError(f"peft_config: a {type(peft_config).__name__}; prefalign "
                                    "trains LoRA adapters only (peft.LoraConfig)")
    from peft import LoraConfig

    default = LoraConfig()
    mapped = {"r", "lora_alpha", "lora_dropout", "target_modules", "task_type"}
    for f in dataclasses.fields(LoraConfig):
        if f.name in mapped or f.name.startswith("_"):
            continue
        ours, theirs = getattr(peft_config, f.name, None), getattr(default, f.name, None)
        if ours != theirs and f.name not in ("peft_type", "base_model_name_or_path",
                                             "revision", "inference_mode"):
            raise UnsupportedFieldError(f"peft_config.{f.name}={ours!r} is not supported: "
                                        "prefalign's LoRA takes r, lora_alpha, lora_dropout "
                                        "and target_modules")
    targets = peft_config.target_modules
    if targets is None:
        raise UnsupportedFieldError("peft_config.target_modules is None (peft's per-family "
                                    "guess); name the modules or use 'all-linear'")
    targets = targets if isinstance(targets, str) else sorted(targets)
    return {"lora": True, "lora_r": int(peft_config.r), "lora_alpha": peft_config.lora_alpha,
            "lora_dropout": float(peft_config.lora_dropout), "lora_target_modules": targets}


class _Trainer:
    _trainer = "dpo"
    _config_class: type = DPOConfig

    def __init__(self, model=None, ref_model=None, args=None, data_collator=None,
                 train_dataset=None, eval_dataset=None, processing_class=None,
                 compute_metrics=None, callbacks=None, optimizers=(None, None),
                 optimizer_cls_and_kwargs=None, preprocess_logits_for_metrics=None,
                 peft_config=None, **unsupported):
        if unsupported:
            raise UnsupportedFieldError(f"{type(self).__name__} got {', '.join(unsupported)}: "
                                        "not arguments TRL's trainer takes")
        for name, value in (("data_collator", data_collator),
                            ("compute_metrics", compute_metrics),
                            ("optimizer_cls_and_kwargs", optimizer_cls_and_kwargs),
                            ("preprocess_logits_for_metrics", preprocess_logits_for_metrics)):
            if value is not None:
                raise UnsupportedFieldError(f"{name} is not supported: prefalign builds its "
                                            "batches, optimizer and metrics itself")
        if any(o is not None for o in (optimizers or (None, None))):
            raise UnsupportedFieldError("optimizers is not supported: prefalign trains with "
                                        "AdamW and the configured schedule")
        if model is None:
            raise ValueError("model is required: a model object or a model folder / Hub id")
        if train_dataset is None:
            raise ValueError("train_dataset is required")
        self.args = args if args is not None else self._config_class(
            output_dir=f"{_name(model)}-{self._trainer.upper()}")
        if not isinstance(self.args, _Config) or self.args._trainer != self._trainer:
            raise TypeError(f"args must be a prefalign.compat.trl."
                            f"{self._config_class.__name__}, got {type(self.args).__name__}")
        self.model, self.ref_model, self.processing_class = model, ref_model, processing_class
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.peft_config = peft_config
        self.callbacks = list(callbacks or [])
        self._lora = _lora_settings(peft_config)
        from transformers import TrainerControl, TrainerState

        self.state, self.control = TrainerState(), TrainerControl()
        self._inner = None
        self.result = None

    # the inputs, as paths prefalign reads
    def _inputs(self) -> Path:
        return Path(self.args.output_dir) / "prefalign-inputs"

    def _model_path(self, model, name: str, tokenizer=None) -> str:
        if isinstance(model, (str, os.PathLike)):
            if tokenizer is None:
                return str(model)
            folder = self._inputs() / name
            folder.mkdir(parents=True, exist_ok=True)
            src = Path(model)
            if not src.is_dir():
                from transformers import AutoModelForCausalLM

                AutoModelForCausalLM.from_pretrained(str(model)).save_pretrained(folder)
            else:
                for f in src.iterdir():
                    if f.suffix in (".safetensors", ".bin") or f.name in (
                            "config.json", "generation_config.json", "model.safetensors.index.json"):
                        target = folder / f.name
                        if not target.exists():
                            target.symlink_to(f.resolve())
            tokenizer.save_pretrained(folder)
            return str(folder)
        folder = self._inputs() / name
        model.save_pretrained(folder, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        elif not (folder / "tokenizer_config.json").exists():
            raise ValueError("processing_class is required with a model object (prefalign "
                             "needs the tokenizer)")
        return str(folder)

    def _data_path(self, dataset, name: str) -> str:
        if isinstance(dataset, (str, os.PathLike)):
            return str(dataset)
        module = type(dataset).__module__ or ""
        if type(dataset).__name__ == "DatasetDict":
            if "train" not in dataset:
                raise ValueError(f"{name}: a DatasetDict without a 'train' split; pass the "
                                 "split to train on")
            dataset = dataset["train"]
        elif not module.startswith("datasets"):
            raise TypeError(f"{name}: a {type(dataset).__name__}; pass a datasets.Dataset, "
                            "a DatasetDict or a data file path")
        folder = self._inputs() / name
        dataset.save_to_disk(str(folder))
        return str(folder)

    def _config(self):
        from prefalign.train.config import TrainConfig

        values = self.args.to_train_config_values()
        values.update(self._lora)
        values["model"] = self._model_path(self.model, "model", self.processing_class)
        values["data"] = self._data_path(self.train_dataset, "train_dataset")
        if self.eval_dataset is not None:
            values["eval_data"] = self._data_path(self.eval_dataset, "eval_dataset")
        if self.ref_model is not None:
            values["ref_model"] = self._model_path(self.ref_model, "ref_model",
                                                   self.processing_class)
        values.setdefault("cache_dir", str(self._inputs() / "cache"))
        # prefalign's run folder sits beside the inputs (it refuses to hold its own inputs)
        values["output"] = str(Path(values["output"]) / "prefalign-run")
        cfg = TrainConfig(**values)
        return cfg.checked()

    def _build(self):
        if self._inner is None:
            from prefalign.train.trainer import Trainer

            self._inner = Trainer(self._config())
            self._inner.on_log.append(self._log)
        return self._inner

    # TRL's metric names next to prefalign's
    def _trl_metrics(self, metrics: dict[str, Any]) -> dict[str, float]:
        out = {k: v for k, v in metrics.items() if isinstance(v, (int, float))
               and not (isinstance(v, float) and math.isnan(v))}
        names = dict(TRL_METRIC_NAMES)
        if self._trainer == "kto":
            names.update(_KTO_METRIC_NAMES)
        for ours, theirs in names.items():
            for prefix in ("", "eval/"):
                if prefix + ours in out:
                    out[(prefix.replace("/", "_")) + theirs] = out[prefix + ours]
        if self._trainer == "kto" and "rewards/chosen" in out and "rewards/rejected" in out:
            out["rewards/margins"] = out["rewards/chosen"] - out["rewards/rejected"]
        return out

    def _log(self, step: int, metrics: dict[str, Any]) -> None:
        logs = self._trl_metrics(metrics)
        self.state.global_step = step
        self.state.epoch = metrics.get("epoch")
        self.state.log_history.append({**logs, "step": step})
        self._event("on_log", logs=logs)

    def _event(self, name: str, **kw) -> None:
        for cb in self.callbacks:
            cb = cb() if isinstance(cb, type) else cb
            hook = getattr(cb, name, None)
            if hook is not None:
                hook(self.args, self.state, self.control, model=self.model,
                     processing_class=self.processing_class, **kw)

    def train(self, resume_from_checkpoint=None, **kwargs):
        """Train with prefalign; TRL's ``TrainOutput``-like result. Callbacks get
        on_train_begin, on_log (every logged step) and on_train_end."""
        if kwargs:
            raise UnsupportedFieldError(f"train() got {', '.join(kwargs)}: not supported")
        if resume_from_checkpoint not in (None, True, False):
            raise UnsupportedFieldError("resume_from_checkpoint=PATH is not supported: prefalign "
                                        "resumes a run from its own output_dir")
        inner = self._build()
        self.state.max_steps = getattr(inner, "total_steps", 0)
        self._event("on_train_begin")
        self.result = inner.train()
        self.state.global_step = self.result.steps
        self._load_back()
        self._event("on_train_end")
        from transformers.trainer_utils import TrainOutput

        final = self._trl_metrics(self.result.final_metrics)
        return TrainOutput(self.result.steps, float(final.get("loss", float("nan"))), final)

    def _load_back(self) -> None:
        """The trained weights into the caller's model object (``trainer.model``)."""
        folder = Path(self.result.output_dir) / "model"
        if isinstance(self.model, (str, os.PathLike)):
            from transformers import AutoModelForCausalLM

            if self._lora:
                from peft import AutoPeftModelForCausalLM

                self.model = AutoPeftModelForCausalLM.from_pretrained(str(folder))
            else:
                self.model = AutoModelForCausalLM.from_pretrained(str(folder))
            return
        if self._lora:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, str(folder))
            return
        from safetensors.torch import load_file

        state = {}
        for f in sorted(folder.glob("*.safetensors")):
            state.update(load_file(str(f)))
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        tied = set(getattr(self.model, "_tied_weights_keys", None) or [])
        if unexpected or set(missing) - tied:
            log.warning("loading the trained weights back: missing %s, unexpected %s",
                        missing, unexpected)

    def evaluate(self, eval_dataset=None, **kwargs) -> dict[str, float]:
        """Metrics of ``eval_dataset`` (TRL's ``eval_`` names next to prefalign's ``eval/``)."""
        if eval_dataset is not None and eval_dataset is not self.eval_dataset:
            if self._inner is not None:
                raise UnsupportedFieldError("evaluate(eval_dataset=...) after the trainer was "
                                            "built: pass eval_dataset to the trainer instead")
            self.eval_dataset = eval_dataset
        if self.eval_dataset is None:
            raise ValueError("evaluate() needs an eval_dataset (pass it to the trainer)")
        inner = self._build()
        metrics = self._trl_metrics(inner.evaluate())
        for k in [k for k in metrics if k.startswith("eval/")]:
            metrics["eval_" + k[5:]] = metrics[k]
        return metrics

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the (trained) model and tokenizer in Hugging Face format."""
        target = Path(output_dir or self.args.output_dir)
        model = self.model
        if isinstance(model, (str, os.PathLike)):
            raise ValueError("save_model before train(): the model is still a path")
        model.save_pretrained(target, safe_serialization=True)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(target)

    def push_to_hub(self, *args, **kwargs):
        raise RuntimeError("push_to_hub is not supported: prefalign runs offline and never "
                           f"uploads; the trained model is in "
                           f"{Path(self.args.output_dir) / 'prefalign-run' / 'model'}"
                           " (upload it with `huggingface-cli upload` if you mean to)")

    def add_callback(self, callback) -> None:
        self.callbacks.append(callback)


def _name(model) -> str:
    if isinstance(model, (str, os.PathLike)):
        return Path(str(model)).name
    return Path(getattr(getattr(model, "config", None), "_name_or_path", "") or "model").name


class DPOTrainer(_Trainer):
    """TRL's ``DPOTrainer`` on prefalign's trainer (pairwise data: explicit or implicit prompt,
    conversational or plain text)."""
    _trainer = "dpo"
    _config_class = DPOConfig


class KTOTrainer(_Trainer):
    """TRL's ``KTOTrainer`` on prefalign's trainer (unpaired data: prompt, completion, label)."""
    _trainer = "kto"
    _config_class = KTOConfig
