"""The pair-strategy registry: every value of ``--pairs``.

A strategy is one decorated function in one module, its metadata declared once::

    @pair_strategy("best-vs-median", output="pairwise", summary="best vs the median response")
    def best_vs_median(item, kept, opts, dropped) -> list:
        ...

It receives one prompt's kept responses after the common filtering (``kept``: `pairs.Kept`
named tuples (sample index, text, score, source), at least two) and returns its records (`make_pair` builds a pair and
counts ties and gaps below ``--min-gap``). ``output`` is the records' kind (pairwise, ranked,
unpaired). A strategy may declare ``options`` (`prefalign.core.registry.Option`): ``--pairs
NAME:VALUE`` or ``NAME:KEY=VALUE,...`` sets them, checked before any work, and the builder
reads them typed from ``opts.strategy_options``. A strategy that reads what a scorer made for
the whole prompt declares it (``needs=("self_tests",)``: the notes the scorer kinds declare,
`prefalign.scoring.registry`); it is then called with ``notes=`` (the prompt's notes) and synth
refuses it, before any work, with a scorer that makes none of them. ``--pairs``' accepted values and help, the manifest's ``kind`` and the table
in docs/synth.md (``scripts/registry_docs.py``) come from here. The built-ins are in
``synth/pairs.py``; a project's own register when its module is imported
(``prefalign --plugin MODULE``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from prefalign.core.registry import Option, Registry, parse_options, split_spec

OUTPUTS = ("pairwise", "ranked", "unpaired")


@dataclass(frozen=True)
class PairStrategy:
    name: str
    output: str  # the kind of records it writes
    summary: str  # what it writes per prompt
    build: Callable = field(repr=False)  # build(item, kept, opts, dropped) -> records
    module: str = ""
    options: tuple[Option, ...] = ()
    paper: str = ""
    needs: tuple[str, ...] = ()  # notes it reads (`Score.notes` keys), from scorer kinds that make them
    # it writes responses that are not the samples as drawn (dstc's code + test): its records
    # carry no sampled token ids (training tokenizes their text)
    rewrites_text: bool = False


_REGISTRY = Registry("pair strategy", ("prefalign.synth.pairs", "prefalign.synth.rso",
                                      "prefalign.synth.curriculum", "prefalign.synth.aepo",
                                      "prefalign.synth.strong_weak", "prefalign.synth.dstc"),
                     pattern=r"^[a-z][a-z0-9-]*$",
                     pattern_words="lower-case letters, digits and -",
                     hint=" (or register one: docs/extending.md)")


def pair_strategy(name: str, *, output: str, summary: str, paper: str = "",
                  options: list[Option] | tuple[Option, ...] = (),
                  needs: tuple[str, ...] = (), rewrites_text: bool = False) -> Callable:
    """Register the decorated ``build(item, kept, opts, dropped) -> records`` as ``name``."""
    _REGISTRY.check_name(name)
    if output not in OUTPUTS:
        raise ValueError(f"pair strategy {name!r}: output must be one of {', '.join(OUTPUTS)}")

    def register(build: Callable) -> Callable:
        _REGISTRY.add(name, PairStrategy(name, output, summary, build, build.__module__,
                                         tuple(options), paper, tuple(needs),
                                         rewrites_text),
                      build.__module__)
        return build

    return register


def parse_strategy(spec: str) -> tuple[PairStrategy, dict]:
    """``NAME`` or ``NAME:OPTIONS`` as the strategy and its typed, checked options."""
    name, rest = split_spec(spec)
    entry = get(name)
    return entry, parse_options(f"pair strategy {entry.name}", entry.options, rest)


def pair_strategies() -> dict[str, PairStrategy]:
    """Every registered strategy, the built-ins first."""
    return _REGISTRY.all()


def get(name: str) -> PairStrategy:
    return _REGISTRY.get(name)


def check_needs(strategy: str, scorer_spec: str | None) -> None:
    """Refuse a strategy whose notes (``needs``) the scorer spec makes none of, before any work
    (a scorer given as an object is trusted)."""
    entry = parse_strategy(strategy)[0]
    if not entry.needs or not scorer_spec:
        return
    from prefalign.scoring import notes_made, registry

    missing = set(entry.needs) - notes_made(scorer_spec)
    if missing:
        makers = [k.name for k in registry.kinds().values() if missing & set(k.notes)]
        raise ValueError(f"--pairs {entry.name} needs a scorer that makes "
                         f"{', '.join(sorted(missing))} ({' or '.join(makers) or 'none known'}:), "
                         f"not --scorer {scorer_spec!r}")
