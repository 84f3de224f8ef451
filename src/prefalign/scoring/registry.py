"""The scorer registry: every kind a scorer spec can name (``KIND:ARGS?KEY=VALUE``).

A kind is one decorated builder in one module, its metadata declared once::

    @scorer_kind("lenscore", args="(none)", summary="the response's length in characters",
                 options={"scale": "multiplier (1.0)"})
    def build(args: str, options: dict, device: str | None) -> Scorer:
        return LengthScorer(**options)

The spec grammar (`prefalign.scoring.parse_scorer_spec`), the accepted kinds and options with
their errors, `--scorer`'s help and the table in docs/synth.md (``scripts/registry_docs.py``)
come from here. The built-in kinds register in their modules (``BUILTIN_MODULES``); a project's
own register when its module is imported (``prefalign --plugin MODULE ...``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

from prefalign.core.registry import Registry

BUILTIN_MODULES = ("verifier", "reward_model", "judge", "likelihood", "self_judge", "jury",
                   "self_tests")


@dataclass(frozen=True)
class ScorerKind:
    name: str
    args: str  # what ARGS is, for the help and the docs
    summary: str  # what it scores
    build: Callable = field(repr=False)  # build(args, options, device) -> Scorer
    options: dict[str, str] = field(default_factory=dict)  # option -> what it is (its default)
    module: str = ""
    nested: bool = False  # ARGS holds whole scorer specs (a jury's): ``?`` stays in them
    notes: tuple[str, ...] = ()  # what it makes per prompt for the log (`Score.notes` keys)

    def check_options(self, options: dict) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(self.options), 1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            takes = ", ".join(sorted(self.options)) or "none"
            raise ValueError(f"scorer {self.name}: unknown option(s) {', '.join(unknown)}{hint}; "
                             f"it takes: {takes}")


_REGISTRY = Registry("scorer kind", tuple(f"prefalign.scoring.{m}" for m in BUILTIN_MODULES),
                     pattern=r"^[a-z][a-z0-9_]*$", pattern_words="lower-case letters, digits and _",
                     hint=" (or register one: docs/extending.md)")


def scorer_kind(name: str, *, args: str, summary: str,
                options: dict[str, str] | None = None, nested: bool = False,
                notes: tuple[str, ...] = ()) -> Callable:
    """Register the decorated ``build(args, options, device) -> Scorer`` as kind ``name``;
    ``nested``: its ARGS are scorer specs, options and all (it takes no options itself);
    ``notes``: the `Score.notes` keys it writes (what pair strategies may need)."""
    _REGISTRY.check_name(name)

    def register(build: Callable) -> Callable:
        _REGISTRY.add(name, ScorerKind(name, args, summary, build, dict(options or {}),
                                       build.__module__, nested, tuple(notes)),
                      build.__module__)
        return build

    return register


def kinds() -> dict[str, ScorerKind]:
    """Every registered kind, the built-ins first."""
    return _REGISTRY.all()


def get(name: str) -> ScorerKind:
    return _REGISTRY.get(name)


def two_paths(args: str, kind: str) -> tuple[str, str]:
    """ARGS of the form ``A,B`` (two model paths)."""
    a, sep, b = args.partition(",")
    if not sep or not a or not b:
        raise ValueError(f"scorer {kind}: write {kind}:A,B (two model paths), got {args!r}")
    return a, b
