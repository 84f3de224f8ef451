"""Scorers and the scorer spec grammar.

A spec is one or more terms joined by ``+``; each term is ``[WEIGHT*]KIND:ARGS[?KEY=VALUE&...]``.
The kinds, their ARGS and options are the scorer registry's (`prefalign.scoring.registry`; the
table is in docs/synth.md): ``verifier``, ``tests``, ``rm``, ``judge``, ``pairjudge``, ``flr``,
``cdr``, ``implicit`` and any a plugin registers. Example:
``0.7*verifier:mypkg.checks:exact_sum+0.3*rm:/models/rm``. A ``+`` starts a new term only when a
kind name follows it, so paths may contain ``+``; ``?`` starts options only in its last occurrence.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from . import registry
from .base import Group, Score, Scorer, WeightedSum
from .registry import scorer_kind


def _patterns() -> tuple[re.Pattern, re.Pattern]:
    """The term splitter and reader for the kinds registered now (plugins may add some)."""
    names = "|".join(re.escape(k) for k in sorted(registry.kinds(), key=len, reverse=True))
    split = re.compile(r"\+(?=\s*(?:[-+]?[0-9.]+(?:[eE][-+]?\d+)?\s*\*\s*)?(?:%s):)" % names)
    term = re.compile(r"^\s*(?:([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*\*\s*)?(%s):(.*)$" % names,
                      re.DOTALL)
    return split, term


def _num(value: str):
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def _split_options(args: str) -> tuple[str, dict]:
    head, sep, tail = args.rpartition("?")
    if not sep or "=" not in tail:
        return args, {}
    return head, {k: _num(v) for k, v in parse_qsl(tail, keep_blank_values=True)}


def build_term(kind: str, args: str, options: dict, device: str | None = None) -> Scorer:
    entry = registry.get(kind)
    entry.check_options(options)
    return entry.build(args, options, device)


def parse_scorer_spec(spec: str) -> list[tuple[float, str, str, dict]]:
    """``spec`` -> [(weight, kind, args, options)], without loading anything."""
    terms = []
    split, term = _patterns()
    for part in split.split(spec.strip()):
        match = term.match(part)
        if not match:
            named = re.match(r"^\s*(?:[-+]?[0-9.]+\s*\*\s*)?([a-z][a-z0-9_]*):", part)
            if named:
                registry.get(named.group(1))  # an unknown kind: named, with the closest one
            raise ValueError(
                f"scorer spec {spec!r}: cannot read the term {part!r}; write [WEIGHT*]KIND:ARGS "
                f"with KIND one of {', '.join(registry.kinds())}, e.g. "
                "0.7*verifier:mypkg.checks:exact_sum+0.3*rm:/models/rm")
        weight, kind, args = match.groups()
        if registry.get(kind).nested:  # members are whole specs: read them now, too
            args, options = args.strip(), {}
            for member in args.split("|"):
                parse_scorer_spec(member)
        else:
            args, options = _split_options(args.strip())
        terms.append((float(weight) if weight else 1.0, kind, args, options))
    return terms


FILE_OPTIONS = ("principles",)  # options that name a file whose contents decide the scores


def files_named(spec: str) -> list[str]:
    """The files a spec's options name (a judge's principles), its nested members' included:
    what a run's fingerprint identifies by content."""
    out = []
    for _, kind, args, options in parse_scorer_spec(spec):
        out += [str(options[o]) for o in FILE_OPTIONS if o in options]
        if registry.get(kind).nested:
            for member in args.split("|"):
                out += files_named(member)
    return out


def notes_made(spec: str) -> set[str]:
    """The `Score.notes` keys a spec's terms make, for the pair strategies that need them. A
    weighted sum passes its terms' notes on; a nested kind (a jury) does not: its members'
    notes do not reach the log."""
    out: set[str] = set()
    for _, kind, _, _ in parse_scorer_spec(spec):
        out.update(registry.get(kind).notes)
    return out


def build_scorer(spec: str, *, device: str | None = None) -> Scorer:
    """A scorer from a spec string (see the module docstring); one term with weight 1 is itself."""
    terms = parse_scorer_spec(spec)
    parts = [(w, build_term(kind, args, options, device)) for w, kind, args, options in terms]
    if len(parts) == 1 and parts[0][0] == 1.0:
        return parts[0][1]
    return WeightedSum(parts)


__all__ = ["Score", "Scorer", "WeightedSum", "Group", "build_scorer", "parse_scorer_spec",
           "files_named", "notes_made",
           "scorer_kind", "registry"]
