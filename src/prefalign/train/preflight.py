"""Everything a training run checks and resolves before it reads data or loads weights.

:func:`preflight` refuses, each in one line, an OUTPUT that would overwrite or delete the run's
own inputs, options the processes cannot share, a missing model or data file, a reference with
another tokenizer and a model the engine cannot run exactly; and resolves, once for the whole
run, the objective with its hyperparameters, the reference kind, the MoE router loss weight, the
attention kernel and the effective ``max_length`` (within the model's positions).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefalign import objectives
from prefalign.core.identity import local_model_dir
from prefalign.core.settings import lines_of, subject
from prefalign.train import run_state
from prefalign.train.config import TrainConfig
from prefalign.train.step_loss import needs_token_kl

log = logging.getLogger(__name__)


class ModelNotFoundError(ValueError):
    """``--model`` (or ``--ref-model``) names neither a folder nor a cached hub model."""


@dataclass(frozen=True)
class Preflight:
    """What the checks resolved, fixed for the whole run."""

    spec: objectives.Objective
    hparams: dict[str, Any]  # resolved once (`Objective.resolve`); passed down as they are
    token_kl: bool  # TDPO: the reference's whole next-token distribution at every token
    reference_kind: str  # none | cache | model | adapter-disabled
    aux_coef: float  # the MoE router loss weight (0: none)
    attn_implementation: str
    max_length: int | None  # within the model's positions


def preflight(cfg: TrainConfig, *, processes: int, device_type: str) -> Preflight:
    """Check ``cfg`` (already validated) against the machine, the models and the data; see the
    module docstring. Raises ValueError (or a subclass) with one line."""
    from prefalign.engine.loading import check_model, check_same_tokenizer

    # an OUTPUT that is (or holds, or lies in) a model, or data inside what a run writes
    # there, would be overwritten or deleted: refused before anything else
    run_state.check_inputs_vs_output(
        cfg.output_dir, models={"--model": cfg.model,
                                **{_ref_flag(i): m for i, m in enumerate(cfg.ref_models)}},
        data={"--data": cfg.data, "--eval-data": cfg.eval_data})
    spec = objectives.get(cfg.objective)
    hparams = spec.resolve(cfg.objective_args)
    token_kl = needs_token_kl(spec)
    reference_kind = resolve_reference(cfg, spec.needs_reference, token_kl)
    check_reference_count(cfg, spec, reference_kind)
    if cfg.max_tokens_per_batch and processes > 1:
        # processes would split a step into different numbers of micro-batches, and the
        # gradient synchronisation of DDP/FSDP expects the same number on each
        raise ValueError("--max-tokens-per-batch is not supported with several processes "
                         "yet; use --batch-size there")
    if cfg.attn_implementation == "flex_attention" and device_type != "cuda":
        # torch has no FlexAttention backward on CPU, and its compiled CPU forward fails once
        # the packed batch shape changes; say so before any work
        raise ValueError("--attn-implementation flex_attention needs a CUDA GPU (this run is "
                         f"on {device_type}); use auto (the default)")
    require_model(cfg.model, _named(cfg, "model", "--model"))
    for i, ref_model in enumerate(cfg.ref_models):
        require_model(ref_model, _named(cfg, "ref_model", _ref_flag(i)))
        if reference_kind != "none":  # it scores the policy's token ids
            check_same_tokenizer(cfg.model, ref_model, trust_remote_code=cfg.trust_remote_code)
    # refuse a model the engine cannot run exactly before reading any data or weights
    aux_coef = router_aux_coef(cfg)
    attn = check_model(cfg.model, trust_remote_code=cfg.trust_remote_code,
                       attn_implementation=cfg.attn_implementation, router_aux_loss=aux_coef > 0)
    for source, name in ((cfg.data, "data"), (cfg.eval_data, "eval_data")):
        if isinstance(source, (str, os.PathLike)) and source and not Path(source).exists():
            flag = _named(cfg, name, "--" + name.replace("_", "-"))
            raise FileNotFoundError(f"{flag} {source}: no such file or folder")
    return Preflight(spec, hparams, token_kl, reference_kind, aux_coef, attn,
                     effective_max_length(cfg))


def resolve_reference(cfg: TrainConfig, needs_reference: bool, token_kl: bool = False) -> str:
    choice = cfg.reference
    if cfg.ref_update != "none":  # TR-DPO: the reference moves, so it is a model of its own
        if not needs_reference:
            raise ValueError(f"--ref-update {cfg.ref_update}: objective {cfg.objective!r} has "
                             "no reference to update")
        if cfg.lora or cfg.qlora:
            raise ValueError(f"--ref-update {cfg.ref_update}: with LoRA the reference is the "
                             "base model the adapters sit on, which does not move; train all "
                             "weights, or leave the reference fixed")
        if choice not in ("auto", "model"):
            raise ValueError(f"--ref-update {cfg.ref_update} updates the reference during "
                             f"training, which --reference {choice} cannot follow (a cache is "
                             "computed once); use --reference model (the default with it)")
        return "model"
    if choice == "auto":
        if not needs_reference:
            return "none"
        if (cfg.lora or cfg.qlora) and not cfg.ref_models:
            return "adapter-disabled"
        return "model" if token_kl else "cache"
    if choice == "cache" and token_kl:
        raise ValueError(f"objective {cfg.objective!r} needs the reference's full next-token "
                         "distribution at every response token (per-token KL), which a cache of "
                         "log-probs does not hold; use --reference model (or adapter-disabled "
                         "with LoRA)")
    if choice == "none" and needs_reference:
        raise ValueError(f"objective {cfg.objective!r} needs a reference model; drop "
                         "--no-reference or choose a reference-free objective (simpo, orpo, cpo, asft, sft)")
    if choice not in ("none", "cache", "model", "adapter-disabled"):
        raise ValueError(f"reference {choice!r} is not one of auto, cache, model, adapter-disabled, none")
    if choice != "none" and not needs_reference:
        log.info("objective %s is reference-free; no reference will be loaded", cfg.objective)
        return "none"
    return choice


def _named(cfg: TrainConfig, name: str, flag: str) -> str:
    """How an error names a path setting: its config file's line when it came from one (a TRL
    recipe's line also names TRL's key), else its flag (also from the Python API)."""
    return subject(name, cfg.origins) if name in lines_of(cfg.origins) else flag


def _ref_flag(i: int) -> str:
    return "--ref-model" if i == 0 else f"--ref-model (#{i + 1})"


def check_reference_count(cfg: TrainConfig, spec: objectives.Objective, reference_kind: str) -> None:
    """Several reference models only for an objective that combines them (mrpo), and such an
    objective only with two or more (the main one first)."""
    from prefalign.objectives.multi_reference import EXTRA_FIELDS

    combines = bool(EXTRA_FIELDS & spec.inputs)
    given = len(cfg.ref_models)
    if given > 1 and not combines:
        raise ValueError(f"--ref-model is given {given} times, but objective {cfg.objective!r} "
                         "has one reference; several references are for mrpo")
    if combines and given < 2:
        raise ValueError(f"objective {cfg.objective!r} combines two or more reference models: "
                         "give --ref-model for each, the main one first (the starting policy's "
                         "folder, to keep it as the main reference as the paper does)")
    if combines and (cfg.ref_update != "none" or reference_kind == "adapter-disabled"):
        raise ValueError(f"objective {cfg.objective!r}: several references with --ref-update "
                         "or an adapter-disabled reference are not supported; use fixed "
                         "references (--reference cache or model)")


def require_model(name: str, flag: str = "--model") -> None:
    """Refuse, with one line, a model that is neither a local folder nor in the Hugging Face
    cache (and, for a hub id, cannot be fetched)."""
    if local_model_dir(name) is not None:
        return
    path = Path(name).expanduser()
    if path.exists():
        raise ModelNotFoundError(f"{flag} {name}: is a file; expected a model folder "
                                 "(config.json and weights) or a hub model id")
    reason = "no such folder, and not a model in the local Hugging Face cache"
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"{flag} {name}: {reason}")
    from transformers import AutoConfig

    try:  # a hub id not cached yet: the hub client fetches it, or says why not
        AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelNotFoundError(f"{flag} {name}: {reason}, nor fetched from the hub "
                                 f"({first[:200]})") from None


def model_max_positions(name: str, trust_remote_code: bool = False) -> int | None:
    """The model's position limit (``max_position_embeddings`` or its family's name for it)."""
    from prefalign.engine.loading import model_config

    config = model_config(name, trust_remote_code=trust_remote_code)
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def router_aux_coef(cfg: TrainConfig) -> float:
    """The MoE router loss weight: the flag, else the model config's when it asks for router
    logits (TRL's rule), else 0."""
    if cfg.router_aux_loss_coef is not None:
        return float(cfg.router_aux_loss_coef)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code)
    if getattr(config, "output_router_logits", False):
        return float(getattr(config, "router_aux_loss_coef", 0.0) or 0.0)
    return 0.0


def effective_max_length(cfg: TrainConfig) -> int | None:
    """``max_length`` within the model's positions: the model's limit when unset, clamped
    (with a warning) when larger."""
    limits = [(model_max_positions(m, cfg.trust_remote_code), m)
              for m in (cfg.model, *cfg.ref_models)]
    limits = [(n, m) for n, m in limits if n]
    if not limits:
        return cfg.max_length
    limit, which = min(limits)
    if cfg.max_length is None:
        chosen = limit
    elif cfg.max_length > limit:
        log.warning("max_length %d is more than the %d positions of %s; using %d (rows longer "
                    "than that are cut or dropped by --truncation %s)", cfg.max_length, limit,
                    which, limit, cfg.truncation)
        chosen = limit
    else:
        chosen = cfg.max_length
    if cfg.max_prompt_length is not None and cfg.max_prompt_length >= chosen:
        raise ValueError(f"max_prompt_length ({cfg.max_prompt_length}) must be below "
                         f"max_length ({chosen}{', the positions of ' + which if chosen == limit else ''})"
                         " to leave room for the response")
    return chosen


def check_positions(examples, source, max_length: int | None) -> None:
    """A guard: truncation should have made an example longer than ``max_length`` impossible."""
    if max_length is None or not examples:
        return
    longest = max(len(ex.prompt_ids) + max(len(r) for r in ex.responses) for ex in examples)
    if longest > max_length:
        raise ValueError(f"{source}: an example of {longest} tokens is longer than "
                         f"max_length {max_length} (the model's positions at most)")
