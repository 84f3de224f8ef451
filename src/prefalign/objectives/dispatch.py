"""Entry points. :func:`run` is the one path from a typed batch to an objective's output:
resolve the hyperparameters (once, in the registry), apply the declared modifiers (f-DPO,
LD-DPO, WPO), update and fill the running statistics when a trainer's state is given, call the
objective. ``compute*`` validate keyword arguments into a typed batch, call :func:`run` and
return its per-example losses Tensor[B].
"""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import Tensor

from .batches import ListwiseBatch, ObjectiveOutput, PairwiseBatch, UnpairedBatch
from .registry import Objective, get
from .state import ObjectiveState, Reduce
from .token_level import TOKEN_INPUTS

SCALAR_INPUTS = frozenset({"kl", "delta", "gap_mean", "gap_std", "step_mean_length"})
PER_EXAMPLE_INPUTS = frozenset({"margin", "strength", "chosen_seq_kl", "rejected_seq_kl"})
_REF_FREE = "simpo, cpo, orpo, asft"


def _fail(entry: Objective, message: str) -> ValueError:
    return ValueError(f"objective {entry.name!r}: {message}")


def _split_kwargs(entry: Objective, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate hyperparameters (resolved by the registry: defaults filled in, values checked)
    from extra inputs."""
    hp_specs = {h.name: h for h in entry.hyperparameters}
    accepted_inputs = entry.accepted_inputs
    given: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in hp_specs:
            given[key] = value
        elif key in accepted_inputs:
            if value is not None:
                extras[key] = value
        else:
            known = sorted(hp_specs) + sorted(accepted_inputs)
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise _fail(
                entry,
                f"unknown hyperparameter or input {key!r}.{hint} Hyperparameters: "
                f"{', '.join(sorted(hp_specs)) or 'none'}; extra inputs: "
                f"{', '.join(sorted(accepted_inputs)) or 'none'}.",
            )
    return entry.resolve(given), extras


def _as_tensor(entry: Objective, name: str, value: Any, like: Tensor | None = None, floating: bool = False) -> Tensor:
    """``value`` as a tensor on ``like``'s device; Python numbers take ``like``'s dtype when ``floating``."""
    if isinstance(value, Tensor):
        return value
    dtype = like.dtype if floating and like is not None and like.is_floating_point() else None
    try:
        return torch.as_tensor(value, dtype=dtype, device=None if like is None else like.device)
    except Exception as e:  # noqa: BLE001 - rewrap with the argument's name
        raise _fail(entry, f"{name} must be a tensor, got {type(value).__name__}") from e


def _check_shape(entry: Objective, name: str, value: Tensor, shape: torch.Size) -> None:
    if value.shape != shape:
        raise _fail(entry, f"{name} has shape {tuple(value.shape)}, expected {tuple(shape)}")


def _check_lengths(entry: Objective, name: str, lengths: Tensor, shape: torch.Size) -> Tensor:
    _check_shape(entry, name, lengths, shape)
    if bool((lengths <= 0).any()):
        rows = torch.nonzero(lengths <= 0).flatten().tolist()[:10]
        raise _fail(entry, f"{name} must be >= 1 (response tokens); got 0 or less at rows {rows}")
    return lengths


def _check_extras(entry: Objective, extras: dict[str, Any], batch_shape: torch.Size, like: Tensor) -> None:
    for key in list(extras):
        if key in SCALAR_INPUTS:
            t = _as_tensor(entry, key, extras[key], like, floating=True)
            if t.numel() != 1:
                raise _fail(entry, f"{key} must be a scalar (one number), got shape {tuple(t.shape)}")
            extras[key] = t.reshape(()).to(device=like.device)
        elif key in PER_EXAMPLE_INPUTS:
            t = _as_tensor(entry, key, extras[key], like, floating=True)
            _check_shape(entry, key, t, batch_shape)
            extras[key] = t
        elif key in TOKEN_INPUTS:
            t = _as_tensor(entry, key, extras[key], like, floating=not key.endswith("_mask"))
            if t.dim() != 2 or t.shape[0] != batch_shape[0]:
                raise _fail(entry, f"{key} must be [batch, T] with batch = {batch_shape[0]}, got {tuple(t.shape)}")
            extras[key] = t


def _require(entry: Objective, extras: dict[str, Any], names: frozenset[str], why: str) -> None:
    missing = sorted(n for n in names if n not in extras)
    if missing:
        raise _fail(entry, f"{why} needs the extra inputs {', '.join(missing)} (see prefalign.objectives docs)")


def run(
    entry: Objective | str,
    batch: Any,
    hyperparameters: dict[str, Any] | None = None,
    *,
    state: ObjectiveState | None = None,
    update_state: bool = True,
    reduce: Reduce | None = None,
) -> ObjectiveOutput:
    """The objective's losses and implicit rewards on a typed batch.

    ``hyperparameters`` are resolved by the registry (defaults filled in, each checked); the
    objective's modifiers prepare the batch (f-divergence scores, LD-DPO log-probs); with a
    trainer's ``state`` its running statistics are updated with this batch (all processes
    together through ``reduce``; not with ``update_state=False``) and fill the batch; then the
    objective runs and the modifiers finish its output (WPO's weights).
    """
    entry = get(entry) if isinstance(entry, str) else entry
    hps = entry.resolve(hyperparameters)
    try:
        for m in entry.modifiers:
            batch = m.prepare(entry, batch, hps)
        if state is not None and state.active:
            batch = state.observe(batch, reduce) if update_state else state.fill(batch)
        own = {k: v for k, v in hps.items() if k not in entry.modifier_names}
        out = entry.fn(batch, **own)
        for m in entry.modifiers:
            out = m.finish(entry, batch, hps, out)
    except ValueError as e:
        if str(e).startswith(f"objective {entry.name!r}"):
            raise
        raise _fail(entry, str(e)) from e
    return out


def compute(
    name: str,
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor | None = None,
    ref_rejected_logps: Tensor | None = None,
    chosen_lengths: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
    **kwargs: Any,
) -> Tensor:
    """Per-pair losses Tensor[B] of a pairwise objective (or ``sft`` on the chosen responses).

    Log-probs are summed over response tokens, Tensor[B]; lengths are response token
    counts, Tensor[B]. ``kwargs`` are the objective's hyperparameters (see ``get(name)``)
    and its extra inputs (``get(name).inputs`` / ``optional_inputs``). Reference-free
    objectives ignore the reference arguments.
    """
    entry = get(name)
    if entry.shape == "sft":
        return compute_unpaired(entry.name, policy_chosen_logps, None, lengths=chosen_lengths, **kwargs)
    if entry.shape != "pairwise":
        other = "compute_unpaired" if entry.shape == "unpaired" else "compute_listwise"
        raise _fail(entry, f"is a {entry.shape} objective: call prefalign.objectives.{other}")
    hps, extras = _split_kwargs(entry, kwargs)

    pc = _as_tensor(entry, "policy_chosen_logps", policy_chosen_logps)
    if pc.dim() != 1:
        raise _fail(entry, f"policy_chosen_logps must be Tensor[batch] (summed log-probs), got shape {tuple(pc.shape)}")
    shape = pc.shape
    pr = _as_tensor(entry, "policy_rejected_logps", policy_rejected_logps, pc, floating=True)
    _check_shape(entry, "policy_rejected_logps", pr, shape)
    _check_extras(entry, extras, shape, pc)

    rc = rr = None
    if entry.needs_reference:
        if ref_chosen_logps is None or ref_rejected_logps is None:
            missing = [n for n, v in (("ref_chosen_logps", ref_chosen_logps), ("ref_rejected_logps", ref_rejected_logps)) if v is None]
            raise _fail(
                entry,
                f"needs reference-model log-probs: pass {' and '.join(missing)} (Tensor[batch], summed "
                f"over response tokens), or use a reference-free objective ({_REF_FREE})",
            )
        rc = _as_tensor(entry, "ref_chosen_logps", ref_chosen_logps, pc, floating=True)
        rr = _as_tensor(entry, "ref_rejected_logps", ref_rejected_logps, pc, floating=True)
        _check_shape(entry, "ref_chosen_logps", rc, shape)
        _check_shape(entry, "ref_rejected_logps", rr, shape)

    if chosen_lengths is None and "chosen_token_mask" in extras:
        chosen_lengths = extras["chosen_token_mask"].sum(-1)
    if rejected_lengths is None and "rejected_token_mask" in extras:
        rejected_lengths = extras["rejected_token_mask"].sum(-1)
    cl = None if chosen_lengths is None else _check_lengths(entry, "chosen_lengths", _as_tensor(entry, "chosen_lengths", chosen_lengths, pc), shape)
    rl = None if rejected_lengths is None else _check_lengths(entry, "rejected_lengths", _as_tensor(entry, "rejected_lengths", rejected_lengths, pc), shape)

    _require(entry, extras, entry.inputs - TOKEN_INPUTS, "this objective")
    batch = PairwiseBatch(pc, pr, rc, rr, cl, rl, **extras)
    return run(entry, batch, hps).losses


def _labels(entry: Objective, labels: Any, shape: torch.Size, like: Tensor) -> Tensor:
    if labels is None:
        if entry.name == "sft":
            return torch.ones(shape, dtype=torch.bool, device=like.device)
        if entry.name == "npo":
            return torch.zeros(shape, dtype=torch.bool, device=like.device)
        raise _fail(entry, "needs labels: a bool Tensor[batch], True = desirable, False = undesirable")
    t = _as_tensor(entry, "labels", labels, like)
    _check_shape(entry, "labels", t, shape)
    if t.dtype != torch.bool:
        if t.is_floating_point() or bool(((t != 0) & (t != 1)).any()):
            raise _fail(entry, f"labels must be bool (True = desirable), got dtype {t.dtype}")
        t = t.bool()
    return t


def compute_unpaired(
    name: str,
    policy_logps: Tensor,
    labels: Tensor | None,
    ref_logps: Tensor | None = None,
    lengths: Tensor | None = None,
    **kwargs: Any,
) -> Tensor:
    """Per-example losses Tensor[B] of an unpaired objective (KTO, BCO, NPO, SFT, …).

    ``labels`` is a bool Tensor[B] (True = desirable); it may be None for ``npo`` (all
    undesirable) and ``sft`` (all desirable). KTO additionally takes ``kl_logps`` and
    ``ref_kl_logps`` (Tensor[n]) or ``kl`` (scalar); BCO takes an optional ``delta``.
    """
    entry = get(name)
    if entry.shape not in ("unpaired", "sft"):
        other = "compute" if entry.shape == "pairwise" else "compute_listwise"
        raise _fail(entry, f"is a {entry.shape} objective: call prefalign.objectives.{other}")
    hps, extras = _split_kwargs(entry, kwargs)
    p = _as_tensor(entry, "policy_logps", policy_logps)
    if p.dim() != 1:
        raise _fail(entry, f"policy_logps must be Tensor[batch] (summed log-probs), got shape {tuple(p.shape)}")
    lab = _labels(entry, labels, p.shape, p)
    _check_extras(entry, extras, p.shape, p)
    for key in ("kl_logps", "ref_kl_logps"):
        if key in extras:
            extras[key] = _as_tensor(entry, key, extras[key], p, floating=True)
    if "kl_logps" in extras and "ref_kl_logps" in extras and extras["kl_logps"].shape != extras["ref_kl_logps"].shape:
        raise _fail(entry, "kl_logps and ref_kl_logps must have the same shape")
    r = None
    if entry.needs_reference:
        if ref_logps is None:
            raise _fail(entry, "needs reference-model log-probs: pass ref_logps (Tensor[batch], summed over response tokens)")
        r = _as_tensor(entry, "ref_logps", ref_logps, p, floating=True)
        _check_shape(entry, "ref_logps", r, p.shape)
    ln = None if lengths is None else _check_lengths(entry, "lengths", _as_tensor(entry, "lengths", lengths, p), p.shape)
    _require(entry, extras, entry.inputs, "this objective")
    return run(entry, UnpairedBatch(p, lab, r, ln, **extras), hps).losses


def compute_listwise(
    name: str,
    policy_logps: Tensor,
    ref_logps: Tensor | None = None,
    scores: Tensor | None = None,
    lengths: Tensor | None = None,
    mask: Tensor | None = None,
    **kwargs: Any,
) -> Tensor:
    """Per-list losses Tensor[B] of a listwise objective; inputs are Tensor[B, K].

    ``scores`` are the labels (higher = better); ``mask`` (bool [B, K], True = present)
    marks the valid entries of ragged lists; ``lengths`` are needed only with
    ``length_normalize=True``.
    """
    entry = get(name)
    if entry.shape != "listwise":
        other = "compute_unpaired" if entry.shape in ("unpaired", "sft") else "compute"
        raise _fail(entry, f"is a {entry.shape} objective: call prefalign.objectives.{other}")
    hps, extras = _split_kwargs(entry, kwargs)
    p = _as_tensor(entry, "policy_logps", policy_logps)
    if p.dim() != 2:
        raise _fail(entry, f"policy_logps must be Tensor[batch, K], got shape {tuple(p.shape)}")
    r = None
    if entry.needs_reference:
        if ref_logps is None:
            raise _fail(entry, "needs reference-model log-probs: pass ref_logps (Tensor[batch, K])")
        r = _as_tensor(entry, "ref_logps", ref_logps, p)
        _check_shape(entry, "ref_logps", r, p.shape)
    s = None
    if scores is not None:
        s = _as_tensor(entry, "scores", scores, p)
        _check_shape(entry, "scores", s, p.shape)
    elif "scores" in entry.inputs:
        raise _fail(entry, "needs scores: Tensor[batch, K] of label scores, higher = better")
    m = torch.ones(p.shape, dtype=torch.bool, device=p.device) if mask is None else _as_tensor(entry, "mask", mask, p)
    _check_shape(entry, "mask", m, p.shape)
    if m.dtype != torch.bool:
        raise _fail(entry, f"mask must be a bool tensor (True = present), got {m.dtype}")
    ln = None
    if lengths is not None:
        ln = _as_tensor(entry, "lengths", lengths, p)
        _check_shape(entry, "lengths", ln, p.shape)
        if bool(((ln <= 0) & m).any()):
            raise _fail(entry, "lengths must be >= 1 for every present (mask=True) completion")
        ln = torch.where(m, ln, torch.ones_like(ln))
    return run(entry, ListwiseBatch(p, r, s, ln, m), hps).losses
