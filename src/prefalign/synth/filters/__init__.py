"""The pair-filter registry: every value of ``--filter NAME[:OPTIONS]``.

A filter is one decorated function in one module, its options declared once::

    @pair_filter("near-dup", summary="...", paper="...",
                 options=[Option("threshold", float, 0.9, "...", rule=...)])
    def near_dup(records, options, dropped) -> list:
        ...

It receives every record the strategy built (the whole data set, so a filter may use
quantiles over it) and the options, checked and typed, and returns the records it keeps,
counting each one it drops in ``dropped`` under a reason. Filters run in the order given when
the output is built from synth's durable log, so changing them only rebuilds the output; the
manifest records each one's options and counts. ``--filter``'s help, the accepted options with
their errors and the table in docs/synth.md (``scripts/registry_docs.py``) come from here. The
built-ins are the modules of this package; a project's own register when its module is
imported (``prefalign --plugin MODULE``).

An option spec is ``NAME`` (the defaults), ``NAME:VALUE`` (the first option) or
``NAME:KEY=VALUE,KEY=VALUE``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from prefalign.core.registry import Option, Registry, parse_options, split_spec

BUILTIN_MODULES = ("near_dup", "rip", "margin", "ref_guided", "ches", "strength")


@dataclass(frozen=True)
class PairFilter:
    name: str
    summary: str  # what it drops
    paper: str  # where it comes from ("" for a plain data-hygiene filter)
    options: tuple[Option, ...]
    apply: Callable = field(repr=False)  # apply(records, options, dropped) -> kept records
    module: str = ""
    pairs_only: bool = False  # it judges pairs: refused for another --pairs output
    check: Callable | None = field(default=None, repr=False)  # check(options): before any work


_REGISTRY = Registry("pair filter", tuple(f"{__name__}.{m}" for m in BUILTIN_MODULES),
                     pattern=r"^[a-z][a-z0-9-]*$", pattern_words="lower-case letters, digits and -",
                     hint=" (or register one: docs/extending.md)")


def pair_filter(name: str, *, summary: str, paper: str = "",
                options: list[Option] | tuple[Option, ...] = (), pairs_only: bool = False,
                check: Callable | None = None) -> Callable:
    """Register the decorated ``apply(records, options, dropped) -> records`` as ``name``;
    ``pairs_only``: it filters pairs only; ``check(options)``: checks across its options,
    run when the spec is read (before any work), raising ValueError."""
    _REGISTRY.check_name(name)

    def register(apply: Callable) -> Callable:
        _REGISTRY.add(name, PairFilter(name, summary, paper, tuple(options), apply,
                                       apply.__module__, pairs_only, check), apply.__module__)
        return apply

    return register


def pair_filters() -> dict[str, PairFilter]:
    """Every registered filter, the built-ins first."""
    return _REGISTRY.all()


def get(name: str) -> PairFilter:
    return _REGISTRY.get(name)


@dataclass(frozen=True)
class FilterSpec:
    name: str
    options: dict[str, Any]  # typed, defaults filled in

    def to_dict(self) -> dict[str, Any]:
        return {"filter": self.name, "options": self.options}


def parse_filter(spec: str) -> FilterSpec:
    """``NAME``, ``NAME:VALUE`` or ``NAME:KEY=VALUE,...`` as a checked `FilterSpec`."""
    name, rest = split_spec(spec)
    entry = get(name)
    options = parse_options(f"filter {entry.name}", entry.options, rest)
    if entry.check is not None:
        entry.check(options)
    return FilterSpec(entry.name, options)


def check_filters(specs: list[FilterSpec], output: str) -> None:
    """Before any work: every filter that judges pairs gets pairs (``output``: the records'
    kind of ``--pairs``)."""
    for spec in specs:
        if get(spec.name).pairs_only and output != "pairwise":
            raise ValueError(f"filter {spec.name} filters pairs; --pairs gives {output} "
                             "records")


def describe_record(record, position: int) -> str:
    """Where a record came from, for a filter's message: its prompt and samples."""
    meta = record.meta
    if "prompt_index" in meta:
        samples = (f", samples {meta['chosen_index']} and {meta['rejected_index']}"
                   if "chosen_index" in meta else "")
        return f"the record of prompt {meta['prompt_index']}{samples}"
    return f"record {position + 1}"


def require_pairs(records, name: str) -> None:
    """Refuse, naming the record, anything but pairs (for the filters that judge pairs)."""
    from prefalign.data.records import PairRecord

    for i, record in enumerate(records):
        if not isinstance(record, PairRecord):
            raise ValueError(f"filter {name}: {describe_record(record, i)} is {record.kind}; it "
                             "filters pairs (--pairs with pairwise output)")


def apply_filters(records: list, specs: list[FilterSpec]) -> tuple[list, list[dict[str, Any]]]:
    """``records`` through each filter in order; returns the kept records and, per filter, its
    options and counts (records in, kept, dropped by reason)."""
    report = []
    for spec in specs:
        dropped: Counter = Counter()
        before = len(records)
        kept = list(get(spec.name).apply(list(records), dict(spec.options), dropped))
        if before - len(kept) != sum(dropped.values()):
            raise ValueError(f"filter {spec.name}: dropped {before - len(kept)} records but "
                             f"counted {sum(dropped.values())}; a filter counts every record "
                             "it drops")
        records = kept
        report.append({**spec.to_dict(), "records_in": before, "kept": len(kept),
                       "dropped": dict(dropped)})
    return records, report
