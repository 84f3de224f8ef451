"""Training configuration: one dataclass, read from YAML, overridden by command-line flags.

Every value is coerced to its field's declared type and checked against its meaning before
any model loads (:meth:`TrainConfig.validate`): counts and the learning rate positive,
``max_steps`` -1 ("use epochs") or positive, objective hyperparameters in their declared
ranges. Errors are :class:`ConfigError` (a ``ValueError``: ``prefalign train`` prints it as one
line) naming the setting, the file and line or flag it came from, and what it accepts.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


class ConfigError(ValueError):
    """A setting that cannot be used: wrong type, out of range, unknown, or unreadable YAML."""


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

    @classmethod
    def from_sources(cls, yaml_path: str | None = None, **overrides) -> "TrainConfig":
        """YAML values first, then ``overrides`` (flags); unknown keys are an error.

        Values are coerced to each field's declared type (``lr: 1e-5``, which YAML reads as
        text, is the number 1e-5) and checked against its meaning (:meth:`validate`); an error
        names the file and line for a YAML value, or the flag."""
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        if yaml_path:
            loaded, lines = read_yaml(yaml_path)
            values.update(loaded)
            origins.update({k: f"{yaml_path}, line {n}" for k, n in lines.items()})
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        for k in given:
            origins[k] = "--" + k.replace("_", "-")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            import difflib

            hints = [f"{u} (did you mean {', '.join(difflib.get_close_matches(u, known, 2)) or '?'})"
                     for u in unknown]
            where = f"{yaml_path}: " if yaml_path else ""
            if len(unknown) == 1 and unknown[0] in lines_of(origins):
                where = f"{origins[unknown[0]]}: "
            raise ConfigError(f"{where}unknown option(s): {'; '.join(hints)}")
        values = coerce_values(cls, values, origins)
        cfg = cls(**values)
        cfg.validate(origins)
        return cfg

    def validate(self, origins: dict[str, str] | None = None) -> "TrainConfig":
        """Coerce every field to its declared type and check it against its meaning, in place;
        raises :class:`ConfigError` (a ValueError) naming the setting, where it came from and
        what it accepts. Called by ``from_sources`` and by the trainer before any model loads,
        so a ``TrainConfig`` built in Python is checked too. Objective hyperparameters
        (``objective_args``) are checked against the objective's declared ranges."""
        origins = origins or {}
        for name, value in coerce_values(type(self), dataclasses.asdict(self), origins).items():
            setattr(self, name, value)
        for name, (ok, allowed) in _RULES.items():
            value = getattr(self, name)
            if not ok(value):
                raise ConfigError(f"{_subject(name, origins)} must be {allowed}, got {value!r}")
        if self.max_length is not None and self.max_prompt_length is not None \
                and self.max_prompt_length >= self.max_length:
            raise ConfigError(f"{_where('max_prompt_length', origins)}max_prompt_length "
                              f"({self.max_prompt_length}) must be below max_length "
                              f"({self.max_length}) to leave room for the response")
        self.objective_args = check_objective_args(self.objective, self.objective_args, origins)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def output_dir(self) -> Path:
        return Path(self.output)


# ---- reading YAML -----------------------------------------------------------------------------
def read_yaml(path: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The top-level mapping of a YAML file and the line of each key. Syntax errors, tags
    (``!!python/object`` and the like: plain values only) and duplicate keys are one-line
    errors naming the file and line."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, {}
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(f"{path}, line {node.start_mark.line + 1}: expected a mapping of "
                              "option: value at the top level")
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in lines:
                raise ConfigError(f"{path}, line {key_node.start_mark.line + 1}: option {key!r} "
                                  f"is given twice (first on line {lines[key]})")
            lines[key] = key_node.start_mark.line + 1
            if key == "objective_args" and isinstance(value_node, yaml.MappingNode):
                for sub_key, _ in value_node.value:
                    lines[f"objective_args.{sub_key.value}"] = sub_key.start_mark.line + 1
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = e.problem or e.context or "invalid YAML"
        if e.problem and e.context and e.context_mark is not None and mark is not e.context_mark \
                and e.context_mark.line != mark.line:
            problem += f" ({e.context} that starts on line {e.context_mark.line + 1})"
        if isinstance(e, yaml.constructor.ConstructorError) and "tag" in problem:
            problem += " (tags are not allowed: plain values only)"
        raise ConfigError(f"{where}: {problem}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from None
    finally:
        loader.dispose()
    return data, {str(k): v for k, v in lines.items()}


def lines_of(origins: dict[str, str]) -> set[str]:
    return {k for k, v in origins.items() if ", line " in v}


def _where(name: str, origins: dict[str, str]) -> str:
    origin = origins.get(name)
    return f"{origin}: " if origin else ""


def _subject(name: str, origins: dict[str, str]) -> str:
    """How an error names a setting: ``--lr`` (a flag), ``FILE, line 3: lr`` (YAML) or ``lr``."""
    origin = origins.get(name)
    if origin and origin.startswith("--"):
        return origin
    return f"{origin}: {name}" if origin else name


# ---- coercion by declared type ------------------------------------------------------------------
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _number(text: str) -> float:
    return float(text.strip().replace("_", ""))


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` (a field's type), or raise TypeError with what was expected."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        for arg in args:  # a value that already has one of the types stays as it is
            if arg in (str, bool) and type(value) is arg:
                return value
            if arg in (int, float) and type(value) in (int, float) and not isinstance(value, bool):
                return _coerce(value, arg)
            if typing.get_origin(arg) in (list, tuple, dict) and isinstance(
                    value, typing.get_origin(arg)):
                return _coerce(value, arg)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except TypeError as e:
                errors.append(str(e))
        raise TypeError(" or ".join(errors) + (" or null" if type(None) in args else ""))
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise TypeError("true or false")
    if hint is int:
        if isinstance(value, bool):
            raise TypeError("a whole number")
        if isinstance(value, int):
            return value
        try:
            number = _number(value) if isinstance(value, str) else value
        except ValueError:
            raise TypeError("a whole number") from None
        if isinstance(number, float) and math.isfinite(number) and number.is_integer():
            return int(number)
        raise TypeError("a whole number")
    if hint is float:
        if isinstance(value, bool):
            raise TypeError("a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return _number(value)
            except ValueError:
                pass
        raise TypeError("a number")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise TypeError("text")
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or (args and args[-1] is not Ellipsis
                                                    and len(items) != len(args)):
            raise TypeError(f"a list of {len(args)} values")
        return tuple(_coerce(v, a) for v, a in zip(items, args))
    if origin is list:
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise TypeError("a list")
        return [_coerce(v, args[0]) if args else v for v in items]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError("a mapping of name: value")
        return dict(value)
    return value


def coerce_values(cls, values: dict[str, Any], origins: dict[str, str]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in values.items():
        try:
            out[name] = _coerce(value, hints[name])
        except TypeError as e:
            raise ConfigError(f"{_subject(name, origins)} must be {e}, got {value!r}") from None
    return out


# ---- what each setting means ----------------------------------------------------------------------
def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _at_least(n) -> Callable[[Any], bool]:
    return lambda v: _finite(v) and v >= n


def _optional(check) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _one_of(*choices) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in choices), "one of " + ", ".join(choices)


def _dtypes() -> tuple[str, ...]:
    return ("float32", "bfloat16", "float16")


_POSITIVE = (lambda v: _finite(v) and v > 0)
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "batch_size": (_at_least(1), ">= 1 (pairs per device per micro-batch)"),
    "grad_accum": (_at_least(1), ">= 1"),
    "epochs": (_POSITIVE, "a finite number > 0"),
    "max_steps": ((lambda v: v == -1 or (_finite(v) and v >= 1)), ">= 1, or -1 to use epochs"),
    "lr": (_POSITIVE, "a finite number > 0"),
    "warmup_steps": (_at_least(0), ">= 0"),
    "warmup_ratio": ((lambda v: _finite(v) and 0 <= v < 1), "in [0, 1)"),
    "weight_decay": (_at_least(0), "a finite number >= 0"),
    "max_grad_norm": (_at_least(0), "a finite number >= 0 (0 = no clipping)"),
    "adam_betas": ((lambda v: len(v) == 2 and all(_finite(b) and 0 <= b < 1 for b in v)),
                   "two numbers in [0, 1)"),
    "max_length": (_optional(_at_least(2)), ">= 2 (one prompt and one response token), or null"),
    "max_prompt_length": (_optional(_at_least(1)), ">= 1, or null"),
    "truncation": _one_of("keep_start", "truncate_prompt_left", "drop"),
    "on_error": _one_of("raise", "skip"),
    "reference": _one_of("auto", "cache", "model", "adapter-disabled", "none"),
    "scheduler": _one_of("linear", "cosine", "constant"),
    "dtype": _one_of(*_dtypes()),
    "router_aux_loss_coef": (_optional(_at_least(0)), "a finite number >= 0, or null"),
    "chunk_tokens": (_at_least(1), ">= 1"),
    "row_tokens": (_optional(_at_least(1)), ">= 1, or null"),
    "max_tokens_per_batch": (_optional(_at_least(1)), ">= 1, or null"),
    "ref_batch_tokens": (_at_least(1), ">= 1"),
    "lora_r": (_at_least(1), ">= 1"),
    "lora_alpha": ((lambda v: _finite(v) and v > 0), "> 0"),
    "lora_dropout": ((lambda v: _finite(v) and 0 <= v < 1), "in [0, 1)"),
    "logging_steps": (_at_least(1), ">= 1"),
    "eval_steps": (_at_least(0), ">= 0 (0 = only at the end)"),
    "save_steps": (_at_least(0), ">= 0 (0 = no checkpoints)"),
    "save_total_limit": (_at_least(1), ">= 1"),
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
        raise ConfigError(f"{_where('objective', origins)}{e}") from None
    unknown = sorted(set(args) - set(spec.defaults))
    if unknown:
        import difflib

        close = {u: difflib.get_close_matches(u, list(spec.defaults), 1) for u in unknown}
        hint = "; ".join(f"{u}: did you mean {c[0]}?" for u, c in close.items() if c)
        raise ConfigError(
            f"{_where('objective_args', origins)}objective {spec.name!r} has no hyperparameter(s) "
            f"{', '.join(unknown)}; it takes: {', '.join(sorted(spec.defaults)) or 'none'}"
            + (f" ({hint})" if hint else ""))
    out = {}
    for name, value in args.items():
        try:
            out[name] = spec.hyperparameter(name).coerce(spec.name, value)
        except ValueError as e:
            where = origins.get(f"objective_args.{name}") or origins.get("objective_args")
            raise ConfigError(f"{where}: {e}" if where else str(e)) from None
    return out


# ---- what each setting is, for `prefalign train --help` (and docs); defaults, types and the
# accepted values of `_RULES` are added by the CLI from the fields themselves ---------------------
FIELD_HELP: dict[str, str] = {
    "model": "the starting policy: a model folder or Hub id (required)",
    "data": "training data file or saved dataset folder: pairwise, unpaired or ranked rows "
            "(required)",
    "objective": "the training objective, a name from `prefalign objectives`",
    "output": "run folder: checkpoints, metrics.jsonl, the final model",
    "objective_args": "objective hyperparameters (YAML mapping; on the command line --beta etc. "
                      "or --set KEY=VALUE)",
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
    "row_tokens": "tokens per packed row (default: the longest example)",
    "max_tokens_per_batch": "split each step's examples into micro-batches of at most this many "
                            "tokens (prompt once + responses) instead of --batch-size examples; "
                            "the step, its loss and its gradient stay the same (default: off)",
    "ref_batch_tokens": "tokens per forward pass when computing reference log-probs",
    "disable_dropout": "turn dropout off in policy and reference",
    "lora": "train a LoRA adapter instead of all weights",
    "lora_r": "LoRA rank",
    "lora_alpha": "LoRA alpha (scale = alpha / r)",
    "lora_dropout": "LoRA dropout",
    "lora_target_modules": "modules that get adapters: all-linear or a list of names",
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
