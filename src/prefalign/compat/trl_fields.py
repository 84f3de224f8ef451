"""TRL's config fields and what each becomes in prefalign: one table, :data:`FIELDS` (a
:class:`~prefalign.train.TrainConfig` field, an objective hyperparameter, or the reason it is
refused), read by :mod:`prefalign.compat.trl`'s configs and by :func:`translate_yaml` (``trl dpo
--config FILE`` YAML). A field left at TRL's default is accepted whatever it is; a field
prefalign cannot honour, set to anything else, is refused with a message naming it (docs/trl.md).
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["FIELDS", "SCRIPT_FIELDS", "Field", "translate", "translate_yaml", "trainer_of",
           "read_trl_yaml", "is_trl_config",
           "UnsupportedFieldError", "TRL_METRIC_NAMES"]


class UnsupportedFieldError(ValueError):
    """A TRL field (or value) prefalign does not support; the message names it and says why,
    and ``field`` is its name (for a YAML config's error to name its line)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


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


def _scalar(v: Any) -> Any:
    """A numpy or torch scalar as the Python value it holds."""
    item = getattr(v, "item", None)
    if callable(item) and getattr(v, "ndim", 0) == 0 and not isinstance(v, (str, bytes)):
        return item()
    return v


def _coerced(v: Any, hint: type) -> Any:
    """``v`` as prefalign's settings read a ``hint`` value (`prefalign.core.settings.coerce`:
    a bool is no number, 2.0 is a whole number, 1.5 is not), numpy/torch scalars unwrapped."""
    from prefalign.core.settings import coerce

    try:
        return coerce(_scalar(v), hint)
    except TypeError as e:
        raise ValueError(f"expected {e}") from None


def _int(v: Any) -> int:
    return _coerced(v, int)


def _float(v: Any) -> float:
    return _coerced(v, float)


def _bool(v: Any) -> bool:
    """true/false, 1/0 (or their text); "no" and other values are refused, not truth-tested
    (stricter than settings' yes/no/on/off: TRL's own parser takes only true/false)."""
    v = _scalar(v)
    if isinstance(v, bool):
        return v
    if isinstance(v, numbers.Integral) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise ValueError("expected true or false")


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
    if _float(v) < 1 or _float(v) != int(_float(v)):
        raise UnsupportedFieldError(f"logging_steps={v!r}: a share of all steps (below 1) is "
                                    "not supported; give a whole number of steps")
    return {"logging_steps": _int(v)}


def _save_steps(v: Any) -> dict:
    if _float(v) < 1 or _float(v) != int(_float(v)):
        raise UnsupportedFieldError(f"save_steps={v!r}: a share of all steps is not supported")
    return {"save_steps": _int(v)}


def _save_strategy(v: Any) -> dict:
    """Checked here; "no" is applied after TRL's save_steps default (see :func:`translate`)."""
    v = str(getattr(v, "value", v))
    if v in ("no", "steps"):
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
    names = [v] if isinstance(v, str) else list(v) if isinstance(v, (list, tuple)) else None
    if names is None or not all(isinstance(n, str) for n in names):
        raise UnsupportedFieldError(f"loss_type={v!r}: expected a loss type's name or a list "
                                    "of names")
    if not names:
        raise UnsupportedFieldError("loss_type is empty: name at least one loss type")
    return {"objective": ",".join(names)}


def _reference_update(v: bool) -> dict:
    return {"ref_update": "soft" if _bool(v) else "none"}


def _precompute(v: bool) -> dict:
    # False (TRL's frozen copy every step) and True give the same log-probs; prefalign's
    # default computes them once and caches them, so only True is pinned to the cache
    return {"reference": "cache"} if _bool(v) else {}


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
    "seed": Field(42, _as("seed", _int)),
    "overwrite_output_dir": Field(False, _as("overwrite", _bool)),
    # optimisation
    "learning_rate": Field(1e-6, _as("lr", _float)),
    "per_device_train_batch_size": Field(8, _as("batch_size", _int)),
    "gradient_accumulation_steps": Field(1, _as("grad_accum", _int)),
    "num_train_epochs": Field(3.0, _as("epochs", _float)),
    "max_steps": Field(-1, _as("max_steps", _int)),
    "lr_scheduler_type": Field("linear", _scheduler),
    "warmup_ratio": Field(0.0, _as("warmup_ratio", _float)),
    "warmup_steps": Field(0, _as("warmup_steps", _int)),
    "weight_decay": Field(0.0, _as("weight_decay", _float)),
    "max_grad_norm": Field(1.0, _as("max_grad_norm", _float)),
    "adam_beta1": Field(0.9, _as("adam_beta1", _float)),
    "adam_beta2": Field(0.999, _as("adam_beta2", _float)),
    "optim": Field("adamw_torch_fused", _optim),
    # precision and memory
    "bf16": Field(True, lambda v: {"bf16": True if v is None else _bool(v)},
                  note="TRL 1.x turns bf16 on by default (unless fp16; None means that too)"),
    "gradient_checkpointing": Field(True, _as("gradient_checkpointing", _bool),
                                    note="TRL 1.x turns it on by default"),
    "trust_remote_code": Field(False, _as("trust_remote_code", _bool)),
    "router_aux_loss_coef": Field(None, _as("router_aux_loss_coef")),
    "disable_dropout": Field(True, _as("disable_dropout", _bool)),
    # bookkeeping
    "logging_steps": Field(10, _logging_steps),
    "save_steps": Field(500, _save_steps),
    "save_strategy": Field("steps", _save_strategy),
    "save_total_limit": Field(None, lambda v: {} if v is None else {"save_total_limit": _int(v)}),
    "eval_steps": Field(None, lambda v: {} if v is None else {"eval_steps": _int(v)}),
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
    "ref_model_mixup_alpha": Field(0.6, _as("ref_update_alpha", _float)),
    "ref_model_sync_steps": Field(512, _as("ref_update_steps", _int)),
    # the loss
    "beta": Field(0.1, _as("objective_args.beta", _float)),
    "loss_type": Field(["sigmoid"], _loss_type, trainers=("dpo",)),
    "loss_weights": Field(None, lambda v: {} if v is None else
                          {"objective_weights": [_float(w) for w in v]}, trainers=("dpo",)),
    "label_smoothing": Field(0.0, _as("objective_args.label_smoothing", _float),
                             trainers=("dpo",)),
    "use_weighting": Field(False, _as("objective_args.use_weighting", _bool), trainers=("dpo",)),
    "ld_alpha": Field(None, _as("objective_args.ld_alpha"), trainers=("dpo",)),
    "f_divergence_type": Field("reverse_kl", _as("objective_args.f_divergence_type", str),
                               trainers=("dpo",)),
    "f_alpha_divergence_coef": Field(0.5, _as("objective_args.f_alpha_divergence_coef", _float),
                                     trainers=("dpo",)),
    "discopop_tau": Field(0.05, _as("objective_args.discopop_tau", _float), trainers=("dpo",)),
    "rpo_alpha": Field(None, lambda v: {} if v is None else {"rpo_alpha": _float(v)},
                       trainers=("dpo",),
                       note="TRL 0.x only (TRL 1.x: loss_type=['sigmoid', 'sft'] with "
                            "loss_weights); accepted with loss_type ['sigmoid'] as prefalign's rpo"),
    "desirable_weight": Field(1.0, _as("objective_args.desirable_weight", _float),
                              trainers=("kto",)),
    "undesirable_weight": Field(1.0, _as("objective_args.undesirable_weight", _float),
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


def _kto_loss(v: Any) -> Any:
    """KTO's loss_type, a string; DPOConfig's list form of one taken as its item."""
    return v[0] if isinstance(v, (list, tuple)) and len(v) == 1 else v

# prefalign metric -> TRL's name for it (prefalign's name is logged too)
TRL_METRIC_NAMES = {"rewards/accuracy": "rewards/accuracies", "rewards/margin": "rewards/margins",
                    "lr": "learning_rate"}
_KTO_METRIC_NAMES = {"rewards/desirable": "rewards/chosen",
                     "rewards/undesirable": "rewards/rejected",
                     "logps/desirable": "logps/chosen", "logps/undesirable": "logps/rejected"}


@functools.lru_cache(maxsize=1)
def _transformers_defaults() -> dict[str, Any]:
    from transformers import TrainingArguments

    return {f.name: f.default for f in dataclasses.fields(TrainingArguments)
            if f.default is not dataclasses.MISSING}


def _same(a: Any, b: Any) -> bool:
    a, b = getattr(a, "value", a), getattr(b, "value", b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b or (a in (None, "none", []) and b in (None, "none", []))


def translate(values: dict[str, Any], trainer: str = "dpo",
              sources: dict[str, str] | None = None) -> dict[str, Any]:
    """TRL config values -> ``TrainConfig`` keyword values (``objective_args`` a dict), by
    :data:`FIELDS`. Refuses (``UnsupportedFieldError``, naming the field) a refused field not at
    its default, a TrainingArguments field prefalign does not map set to another value than
    transformers' default, and a name neither TRL nor transformers has. ``sources``, if given,
    gets the TRL field each prefalign key came from (``objective_args.NAME`` for a
    hyperparameter); a key filled from TRL's defaults has none."""
    out: dict[str, Any] = {"objective_args": {}}
    sources = {} if sources is None else sources
    values = dict(values)
    if trainer == "kto":
        if "loss_type" in values:
            sources["objective"] = "loss_type"
        loss = _kto_loss(values.pop("loss_type", "kto"))
        if loss not in _KTO_LOSS:
            raise UnsupportedFieldError(f"loss_type={loss!r}: KTOConfig takes {_KTO_LOSS}",
                                        "loss_type")
        out["objective"] = loss
    else:
        out["objective"] = "sigmoid"
    for name, value in values.items():
        try:
            _translate_one(name, value, trainer, out, sources)
        except UnsupportedFieldError as e:
            e.field = e.field or name
            raise
        except (TypeError, ValueError) as e:  # a value of the wrong kind (float("x"), int([]))
            raise UnsupportedFieldError(f"{name}={value!r}: {e}", name) from None
    # defaults of TRL that differ from prefalign's apply even when not given
    for name in ("learning_rate", "per_device_train_batch_size", "num_train_epochs",
                 "logging_steps", "save_steps", "seed", "bf16", "gradient_checkpointing",
                 "max_length"):
        if name not in values and trainer in FIELDS[name].trainers:
            out.update(FIELDS[name].to(FIELDS[name].default))
    if str(getattr(values.get("save_strategy"), "value", values.get("save_strategy"))) == "no":
        out["save_steps"], sources["save_steps"] = 0, "save_strategy"  # over any save_steps
    _finish(out, values, sources)
    return out


def _translate_one(name: str, value: Any, trainer: str, out: dict[str, Any],
                   sources: dict[str, str]) -> None:
    """One TRL field's value into ``out`` (see :func:`translate`)."""
    spec = FIELDS.get(name)
    if spec is not None and trainer not in spec.trainers:
        spec = None
    if spec is None:
        known = _transformers_defaults()
        if name in known:
            if _same(value, known[name]):
                return
            raise UnsupportedFieldError(
                f"{name}={value!r} is not supported by prefalign.compat.trl (a "
                "transformers.TrainingArguments field prefalign does not map; leave it at "
                f"its default {known[name]!r}); see docs/trl.md")
        raise UnsupportedFieldError(f"{name}: not a field of TRL's "
                                    f"{'KTOConfig' if trainer == 'kto' else 'DPOConfig'}")
    if spec.refused:
        if _same(value, spec.default):
            return
        raise UnsupportedFieldError(f"{name}={value!r} is not supported: {spec.refused}")
    for key, v in spec.to(value).items():
        sources[key] = name
        if key.startswith("objective_args."):
            if v is not None:
                out["objective_args"][key.split(".", 1)[1]] = v
        else:
            out[key] = v


def _finish(out: dict[str, Any], values: dict[str, Any], sources: dict[str, str]) -> None:
    """Cross-field mappings: Adam's betas, rpo_alpha, what the objective does not take."""
    weights = out.get("objective_weights")
    if weights is not None and len(weights) != len(out["objective"].split(",")):
        raise UnsupportedFieldError(
            f"loss_weights has {len(weights)} weight(s) for loss_type "
            f"{out['objective'].split(',')}: give one weight per loss type", "loss_weights")
    b1, b2 = out.pop("adam_beta1", 0.9), out.pop("adam_beta2", 0.999)
    if (b1, b2) != (0.9, 0.999):
        out["adam_betas"] = (b1, b2)
        sources["adam_betas"] = sources.get("adam_beta1", sources.get("adam_beta2", ""))
    rpo = out.pop("rpo_alpha", None)
    if rpo is not None:
        if out["objective"] != "sigmoid":
            raise UnsupportedFieldError(
                f"rpo_alpha with loss_type {out['objective']!r}: TRL 1.x removed rpo_alpha; "
                "add 'sft' to loss_type with its weight in loss_weights instead", "rpo_alpha")
        out["objective"] = "rpo"
        out["objective_args"]["rpo_alpha"] = rpo
        sources["objective_args.rpo_alpha"] = "rpo_alpha"
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
            "exo_pair, cdpo, aot and simpo take it); see `prefalign objectives`",
            "label_smoothing")


def _mixture(objective: str, weights) -> str:
    from prefalign.objectives.mixture import mixture_name

    return mixture_name(objective, weights)


def _only(default: Any, why: str) -> Field:
    """A script or model argument accepted only at its default (``why``: what to do instead)."""
    return Field(default, refused=why)


def _weights_dtype(v: Any) -> dict:
    if v in (None, "auto"):
        return {}
    if v not in ("float32", "bfloat16", "float16"):
        raise UnsupportedFieldError(f"dtype={v!r} is not supported: prefalign loads weights in "
                                    "float32, bfloat16 or float16")
    return {"dtype": v}


# The `trl dpo` / `trl kto` scripts' own arguments (ScriptArguments, ModelConfig) that a TRL
# recipe file holds beside the trainer's config
SCRIPT_FIELDS: dict[str, Field] = {
    "model_name_or_path": Field(None, _as("model")),
    "ref_model_name_or_path": Field(None, _as("ref_model")),
    "dataset_name": Field(None, _as("data"), note="a local file or saved dataset folder "
                                                  "(offline: no hub download)"),
    "dataset_train_split": _only("train", "prefalign trains on the train split of a saved "
                                          "dataset folder"),
    "dataset_test_split": Field("test", lambda v: {},
                                note="accepted, no effect: give eval_data for evaluation"),
    "dataset_config": _only(None, "give the configuration's files or folder as dataset_name"),
    "dataset_streaming": _only(False, "prefalign reads the data set whole"),
    "model_revision": _only("main", "prefalign runs offline on a local model folder"),
    "dtype": Field(None, _weights_dtype),
    "torch_dtype": Field(None, _weights_dtype, note="TRL 0.x's name of dtype"),
    "attn_implementation": Field(None, lambda v: {} if v is None else
                                 {"attn_implementation": v}),
    "use_peft": Field(False, _as("lora", _bool)),
    "lora_r": Field(16, _as("lora_r", _int)),
    "lora_alpha": Field(32, _as("lora_alpha", _int)),
    "lora_dropout": Field(0.05, _as("lora_dropout", _float)),
    "lora_target_modules": Field(None, lambda v: {} if v is None else
                                 {"lora_target_modules": v}),
    "lora_task_type": _only("CAUSAL_LM", "prefalign trains causal LMs"),
    "lora_modules_to_save": _only(None, "not supported by prefalign's LoRA"),
    "use_rslora": _only(False, "not supported by prefalign's LoRA"),
    "use_dora": _only(False, "not supported by prefalign's LoRA"),
    "load_in_4bit": Field(False, _as("qlora", _bool)),
    "load_in_8bit": _only(False, "prefalign quantizes in 4 bits only (load_in_4bit)"),
    "bnb_4bit_quant_type": _only("nf4", "prefalign's QLoRA uses nf4"),
    "use_bnb_nested_quant": _only(False, "not supported by prefalign's QLoRA"),
    "ignore_bias_buffers": _only(False, "not needed: prefalign does not wrap the model in DDP "
                                        "itself"),
}
_KTO_ONLY = {name for name, f in FIELDS.items() if f.trainers == ("kto",)}


# prefalign's setting -> the TRL field it is spelled as in a recipe, where the names differ
PREFALIGN_SPELLINGS = {
    "model": "model_name_or_path", "data": "dataset_name", "ref_model": "ref_model_name_or_path",
    "output": "output_dir", "overwrite": "overwrite_output_dir", "lr": "learning_rate",
    "batch_size": "per_device_train_batch_size", "grad_accum": "gradient_accumulation_steps",
    "epochs": "num_train_epochs", "scheduler": "lr_scheduler_type",
    "adam_betas": "adam_beta1 / adam_beta2", "progress": "disable_tqdm",
    "truncation": "truncation_mode", "ref_update": "sync_ref_model",
    "ref_update_alpha": "ref_model_mixup_alpha", "ref_update_steps": "ref_model_sync_steps",
    "objective": "loss_type", "objective_weights": "loss_weights", "lora": "use_peft",
    "qlora": "load_in_4bit"}


def trainer_of(mapping: dict[str, Any]) -> str:
    """"kto" for a TRL recipe of `trl kto` (a KTO-only field, or KTO's loss_type), else "dpo"."""
    if _kto_loss(mapping.get("loss_type")) in _KTO_LOSS or _KTO_ONLY & set(mapping):
        return "kto"
    return "dpo"


def translate_yaml(mapping: dict[str, Any], trainer: str | None = None,
                   sources: dict[str, str] | None = None) -> dict[str, Any]:
    """A TRL YAML config (``trl dpo --config FILE``: TRL's field names, plus the script's
    :data:`SCRIPT_FIELDS`) -> ``prefalign train`` YAML keys, with :data:`FIELDS`' mapping and
    refusals; ``trainer`` "dpo" or "kto" (default: :func:`trainer_of`). Keys prefalign already
    has pass through; one given both ways (``lr`` and ``learning_rate``) is refused. TRL's
    defaults that differ from prefalign's are kept, as `trl dpo` would use them. ``sources``,
    if given, gets the file's key each result key came from."""
    from prefalign.train.config import TrainConfig

    trainer = trainer or trainer_of(mapping)
    sources = {} if sources is None else sources
    mapping = dict(mapping)
    given = list(mapping)
    out: dict[str, Any] = {}
    for name in [k for k in mapping if k in SCRIPT_FIELDS]:
        value = mapping.pop(name)
        try:
            _translate_script(name, value, out, sources)
        except UnsupportedFieldError as e:
            e.field = e.field or name
            raise
        except (TypeError, ValueError) as e:  # a value of the wrong kind (use_peft: "yes")
            raise UnsupportedFieldError(f"{name}={value!r}: {e}", name) from None
    if out.get("lora"):  # TRL's ModelConfig defaults where they differ from prefalign's
        if "lora_target_modules" not in out:
            raise UnsupportedFieldError(
                "use_peft without lora_target_modules: TRL leaves the modules to peft's "
                "per-family guess; name them (e.g. [q_proj, v_proj]) or give all-linear",
                "use_peft")
        out.setdefault("lora_dropout", SCRIPT_FIELDS["lora_dropout"].default)
    ours = {f.name for f in dataclasses.fields(TrainConfig)} | set(TrainConfig.ROUTED)
    passthrough = {k: mapping.pop(k) for k in list(mapping)
                   if k in ours and k not in FIELDS}
    if not isinstance(passthrough.get("objective_args", {}), dict):
        raise UnsupportedFieldError("objective_args must be a mapping of name: value",
                                    "objective_args")
    # prefalign's own spelling of a TRL field (lr for learning_rate) in a TRL recipe: the file
    # would be half in each tool's terms, and TRL's defaults would apply to what it left out
    spelled = [k for k in passthrough if k in PREFALIGN_SPELLINGS]
    if spelled:
        trl_names = [k for k in given if k in FIELDS or k in SCRIPT_FIELDS]
        raise UnsupportedFieldError(
            f"{spelled[0]} is prefalign's name for TRL's {PREFALIGN_SPELLINGS[spelled[0]]}, and "
            f"this file has TRL's names too ({', '.join(trl_names[:3])}): write it in one "
            "tool's terms (with TRL's names it is read as a TRL recipe, TRL's defaults "
            "included)", spelled[0])
    trl = translate(mapping, trainer, sources)
    args = trl.pop("objective_args")
    out.update(trl)
    sources.update({key: key for key in passthrough})
    out.update(passthrough)
    if args:
        mine = out.get("objective_args") or {}
        twice = sorted(set(args) & set(mine))
        if twice:
            raise UnsupportedFieldError(f"{twice[0]} is given twice: in objective_args and as "
                                        f"TRL's {twice[0]}; give it once", twice[0])
        out["objective_args"] = {**args, **mine}
    return out


def _translate_script(name: str, value: Any, out: dict[str, Any],
                      sources: dict[str, str]) -> None:
    spec = SCRIPT_FIELDS[name]
    if spec.refused:
        if not _same(value, spec.default):
            raise UnsupportedFieldError(f"{name}={value!r} is not supported: {spec.refused}")
        return
    for key, v in spec.to(value).items():
        if key in out:
            raise UnsupportedFieldError(f"{name} and {sources[key]} both give {key}; give one",
                                        name)
        out[key], sources[key] = v, name


def read_trl_yaml(path: str, loaded: dict[str, Any], lines: dict[str, int]
                  ) -> tuple[dict[str, Any], dict[str, str]]:
    """``prefalign train --config FILE`` for a file in TRL's form (:func:`is_trl_config`):
    its values translated (:func:`translate_yaml`) and where each came from, "FILE, line N
    (TRL_NAME)" or "TRL's default for TRL_NAME"; a refusal is a one-line error naming the file,
    the line and the field. A file in prefalign's own form comes back as it is."""
    from prefalign.core.settings import ConfigError

    if not is_trl_config(loaded):
        return loaded, {k: f"{path}, line {n}" for k, n in lines.items()}
    sources: dict[str, str] = {}
    try:
        values = translate_yaml(loaded, sources=sources)
    except UnsupportedFieldError as e:
        line = lines.get(e.field or "")
        raise ConfigError(f"{path}, line {line}: {e}" if line else f"{path}: {e}") from None
    origins = {}
    for key, value in values.items():
        keys = ([f"objective_args.{k}" for k in value] if key == "objective_args" else []) + [key]
        for k in keys:
            source = sources.get(k)
            if source in lines:
                origins[k] = f"{path}, line {lines[source]}" + (
                    f" ({source})" if source != k.rpartition(".")[2] else "")
            elif k in lines:  # a nested key of a mapping that passed through
                origins[k] = f"{path}, line {lines[k]}"
            else:
                origins[k] = f"{path} (TRL's default)"
    return values, origins


def is_trl_config(mapping: dict[str, Any]) -> bool:
    """Whether a YAML mapping is a TRL config: it has a key that TRL has and prefalign's
    ``TrainConfig`` does not (``learning_rate``, ``loss_type``, ``model_name_or_path``, …)."""
    from prefalign.train.config import TrainConfig

    ours = {f.name for f in dataclasses.fields(TrainConfig)} | set(TrainConfig.ROUTED)
    trl_only = (set(FIELDS) | set(SCRIPT_FIELDS)) - ours
    return any(k in trl_only for k in mapping)


