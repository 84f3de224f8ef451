"""Weighted mixtures of objectives: loss = Σ_i w_i · ℓ_i over one forward (TRL's ``loss_type``
list with ``loss_weights``; MPO, "Enhancing the Reasoning Ability of Multimodal Large Language
Models via Mixed Preference Optimization", is ``0.8*sigmoid+0.2*bco_pair+1*sft``).

A mixture is named by its terms: ``sigmoid,bco_pair,sft`` (weights 1, or ``--objective-weights``)
or ``0.8*sigmoid+0.2*bco_pair+sft``; `get` (the registry's) builds it on demand as an
`Objective` like any other, so the trainer, the CLI and ``compute`` take it unchanged. Its
canonical name (``0.8*sigmoid+0.2*bco_pair+1*sft``) enters the run's fingerprint.

- **Data shape**: the terms share one; ``sft`` terms may join pairwise ones and then train on
  the chosen responses (as TRL's ``sft`` loss type does in DPO). Other mixes are refused.
- **Hyperparameters** are shared by the terms that take them (``beta`` for all DPO-family
  terms, as in TRL); a name two terms declare takes the first one's default unless given. The
  modifiers (f-divergence, LD-DPO, WPO) and running statistics (BCO's running reward shift)
  are not available inside a mixture: their hyperparameters are not the mixture's, and a term
  whose statistics would be on is refused.
- **Logging**: each term's own (unweighted) loss as ``loss/NAME``, beside the total ``loss``;
  the implicit rewards are the first term's that has them.
"""

from __future__ import annotations

import re
from functools import lru_cache

import torch

from .batches import ObjectiveOutput, PairwiseBatch, UnpairedBatch
from .dispatch import run
from .registry import Objective, build_on_demand, get

_TERM = re.compile(r"^\s*(?:([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*\*\s*)?([A-Za-z0-9_\-]+)\s*$")


def is_mixture(name: str) -> bool:
    return isinstance(name, str) and ("," in name or "+" in name or "*" in name)


def mixture_name(objective: str, weights=None) -> str:
    """``objective`` (``a,b,c`` or ``w*a+w*b``) with ``weights`` (for the comma form) as the
    canonical ``w*a+w*b+...``; a single objective's name is returned as it is."""
    if weights is not None and not is_mixture(objective):
        raise ValueError(f"--objective-weights needs several objectives (a,b,...), got "
                         f"{objective!r}")
    if not is_mixture(objective):
        return objective
    terms = _terms(objective, weights)
    return "+".join(f"{_weight(w)}*{name}" for w, name in terms)


def _weight(w: float) -> str:
    """A weight as the shortest text that reads back as the same float (1, 0.8, 0.1234567)."""
    text = repr(float(w))
    return text[:-2] if text.endswith(".0") else text


def _terms(text: str, weights=None) -> list[tuple[float, str]]:
    if "," in text:
        names = [n.strip() for n in text.split(",")]
        if weights is None:
            weights = [1.0] * len(names)
        weights = [float(w) for w in weights]
        if len(weights) != len(names):
            raise ValueError(f"--objective {text!r} has {len(names)} terms but "
                             f"--objective-weights {len(weights)}")
        raw = list(zip(weights, names))
    else:
        if weights is not None:
            raise ValueError("give the weights in --objective (w*a+w*b) or in "
                             "--objective-weights (with a,b), not both")
        raw = []
        for part in text.split("+"):
            match = _TERM.match(part)
            if not match:
                raise ValueError(f"objective mixture {text!r}: cannot read {part!r}; write "
                                 "a,b,c or 0.8*a+0.2*b")
            raw.append((float(match.group(1) or 1.0), match.group(2)))
    terms = []
    for w, name in raw:
        if not w > 0 or w != w or w == float("inf"):
            raise ValueError(f"objective mixture {text!r}: the weight of {name} must be a "
                             f"finite number > 0, got {w:g}")
        entry = get(name)
        if entry.name in [t for _, t in terms]:
            raise ValueError(f"objective mixture {text!r}: {entry.name} is given twice")
        terms.append((w, entry.name))
    if len(terms) < 2:
        raise ValueError(f"objective mixture {text!r}: give two objectives or more")
    return terms


def _shape(text: str, entries) -> str:
    shapes = {e.shape for e in entries}
    if shapes <= {"pairwise", "sft"}:
        return "pairwise" if "pairwise" in shapes else "sft"
    if len(shapes) == 1:
        return shapes.pop()
    raise ValueError(f"objective mixture {text!r} mixes data shapes "
                     f"({', '.join(f'{e.name}: {e.shape}' for e in entries)}); its terms must "
                     "train on one (sft terms may join pairwise ones)")


@lru_cache(maxsize=64)
def mixture(text: str):
    """The `Objective` of a mixture name (see the module docstring)."""
    terms = [(w, get(name)) for w, name in _terms(text)]
    entries = [e for _, e in terms]
    shape = _shape(text, entries)
    hyperparameters, seen = [], set()
    for e in entries:
        for h in e.hyperparameters:
            if h.name not in e.modifier_names and h.name not in seen:
                seen.add(h.name)
                hyperparameters.append(h)
    own = {e.name: tuple(h.name for h in e.hyperparameters if h.name not in e.modifier_names)
           for e in entries}

    def fn(batch, **hps) -> ObjectiveOutput:
        total, parts, first = None, {}, None
        for weight, entry in terms:
            values = {k: hps[k] for k in own[entry.name]}
            if entry.running_stats(values):
                raise ValueError(f"{entry.name}'s running statistics are not available in a "
                                 "mixture; train it alone")
            part = run(entry, _view(batch, entry), values)
            parts[entry.name] = part.losses
            total = weight * part.losses if total is None else total + weight * part.losses
            if first is None and (part.chosen_rewards is not None or part.rewards is not None):
                first = part
        return ObjectiveOutput(total, first.chosen_rewards if first else None,
                               first.rejected_rewards if first else None,
                               first.rewards if first else None, parts=parts)

    name = "+".join(f"{_weight(w)}*{e.name}" for w, e in terms)
    return Objective(
        name=name, formula=" + ".join(f"{_weight(w)}·ℓ[{e.name}]" for w, e in terms),
        paper="; ".join(dict.fromkeys(e.paper for e in entries)),
        needs_reference=any(e.needs_reference for e in entries), shape=shape,
        hyperparameters=tuple(hyperparameters),
        inputs=frozenset().union(*(e.inputs for e in entries)),
        optional_inputs=frozenset().union(*(e.optional_inputs for e in entries)),
        needs_lengths=any(e.needs_lengths for e in entries),
        summary=f"weighted mixture of {', '.join(e.name for e in entries)}", fn=fn)


def _view(batch, entry):
    """The batch as ``entry`` reads it: an sft term in a pairwise mixture sees the chosen
    responses."""
    if entry.shape == "sft" and isinstance(batch, PairwiseBatch):
        labels = torch.ones_like(batch.policy_chosen_logps, dtype=torch.bool)
        return UnpairedBatch(batch.policy_chosen_logps, labels, None, batch.chosen_lengths,
                             step_mean_length=batch.step_mean_length)
    return batch


build_on_demand(is_mixture, lambda name: mixture(mixture_name(name)))
