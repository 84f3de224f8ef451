"""Scorers and the scorer spec grammar.

A spec is one or more terms joined by ``+``; each term is ``[WEIGHT*]KIND:ARGS[?KEY=VALUE&...]``:

| kind | ARGS | scores |
|---|---|---|
| ``verifier`` | ``MODULE:FUNCTION`` | ``FUNCTION(response, example)``: bool / number / (value, reason) |
| ``tests`` | ``FIELD`` (default ``tests``) | 1 if the row's unit tests pass on the response's code, else 0 (run isolated: see `verifier`); options ``timeout``, ``memory_mb``, ``workers``, ``max_processes``, ``file_size_mb``, ``temp_mb``, ``isolation`` (``auto`` or ``full``) |
| ``rm`` | ``PATH`` | a sequence-classification reward model's logit; options ``label``, ``batch_size`` |
| ``judge`` | ``GENERATOR`` | pointwise LLM judge, 1-10 (``Rating: N``); option ``rubric`` |
| ``pairjudge`` | ``GENERATOR`` | pairwise LLM judge, both orders, mean points; option ``rubric`` |
| ``flr`` | ``PATH`` | follow-up likelihood ratio under a scoring LM |
| ``cdr`` | ``STRONG,WEAK`` | ``log p_strong(y|x) - log p_weak(y|x)`` |
| ``implicit`` | ``POLICY,REF`` | ``beta * (log pi - log pi_ref)``; option ``beta`` (0.1) |

``GENERATOR`` is a generator spec (``hf:PATH``, ``vllm:PATH``, ``openai:URL#MODEL``). Example:
``0.7*verifier:mypkg.checks:exact_sum+0.3*rm:/models/rm``. A ``+`` starts a new term only when a
kind name follows it, so paths may contain ``+``; ``?`` starts options only in its last occurrence.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from .base import Group, Score, Scorer, WeightedSum

KINDS = ("verifier", "tests", "rm", "judge", "pairjudge", "flr", "cdr", "implicit")
_SPLIT = re.compile(r"\+(?=\s*(?:[-+]?[0-9.]+(?:[eE][-+]?\d+)?\s*\*\s*)?(?:%s):)" % "|".join(KINDS))
_TERM = re.compile(r"^\s*(?:([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*\*\s*)?(%s):(.*)$" % "|".join(KINDS),
                   re.DOTALL)


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


def _two(args: str, kind: str) -> tuple[str, str]:
    a, sep, b = args.partition(",")
    if not sep or not a or not b:
        raise ValueError(f"scorer {kind}: write {kind}:A,B (two model paths), got {args!r}")
    return a, b


def build_term(kind: str, args: str, options: dict, device: str | None = None) -> Scorer:
    if kind == "verifier":
        from .verifier import FunctionVerifier

        return FunctionVerifier(args)
    if kind == "tests":
        from .verifier import UnitTestVerifier

        return UnitTestVerifier(args or "tests", **options)
    if kind == "rm":
        from .reward_model import RewardModelScorer

        return RewardModelScorer(args, device=device, **options)
    if kind in ("judge", "pairjudge"):
        from prefalign.generation import make_generator
        from .judge import PairwiseJudge, PointwiseJudge

        cls = PointwiseJudge if kind == "judge" else PairwiseJudge
        return cls(make_generator(args), **options)
    if kind == "flr":
        from .likelihood import FollowUpLikelihood

        return FollowUpLikelihood(args, device=device, **options)
    if kind == "cdr":
        from .likelihood import DensityRatio

        return DensityRatio(*_two(args, kind), device=device, **options)
    if kind == "implicit":
        from .likelihood import ImplicitReward

        return ImplicitReward(*_two(args, kind), device=device, **options)
    raise ValueError(f"unknown scorer kind {kind!r}; use one of {', '.join(KINDS)}")


def parse_scorer_spec(spec: str) -> list[tuple[float, str, str, dict]]:
    """``spec`` -> [(weight, kind, args, options)], without loading anything."""
    terms = []
    for part in _SPLIT.split(spec.strip()):
        match = _TERM.match(part)
        if not match:
            raise ValueError(
                f"scorer spec {spec!r}: cannot read the term {part!r}; write [WEIGHT*]KIND:ARGS "
                f"with KIND one of {', '.join(KINDS)}, e.g. 0.7*verifier:mypkg.checks:exact_sum"
                "+0.3*rm:/models/rm")
        weight, kind, args = match.groups()
        args, options = _split_options(args.strip())
        terms.append((float(weight) if weight else 1.0, kind, args, options))
    return terms


def build_scorer(spec: str, *, device: str | None = None) -> Scorer:
    """A scorer from a spec string (see the module docstring); one term with weight 1 is itself."""
    terms = parse_scorer_spec(spec)
    parts = [(w, build_term(kind, args, options, device)) for w, kind, args, options in terms]
    if len(parts) == 1 and parts[0][0] == 1.0:
        return parts[0][1]
    return WeightedSum(parts)


__all__ = ["Score", "Scorer", "WeightedSum", "Group", "KINDS", "build_scorer", "parse_scorer_spec"]
