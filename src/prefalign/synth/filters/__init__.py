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

import difflib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from prefalign.core.registry import Registry
from prefalign.core.settings import Rule, coerce, type_words

BUILTIN_MODULES = ("near_dup", "rip")


@dataclass(frozen=True)
class Option:
    """One option of a filter: its name, type, default, what it is, and what it accepts."""

    name: str
    hint: Any
    default: Any
    help: str
    rule: Rule | None = None

    def read(self, filter_name: str, value: Any) -> Any:
        try:
            value = coerce(value, self.hint)
        except TypeError as e:
            raise ValueError(f"filter {filter_name}: {self.name} must be {e}, got {value!r}") \
                from None
        if self.rule is not None and not self.rule[0](value):
            raise ValueError(f"filter {filter_name}: {self.name} must be {self.rule[1]}, got "
                             f"{value!r}")
        return value

    def describe(self) -> str:
        accepts = self.rule[1] if self.rule is not None else type_words(self.hint)
        default = "none" if self.default is None else self.default
        return f"{self.name}: {self.help} ({accepts}; default {default})"


@dataclass(frozen=True)
class PairFilter:
    name: str
    summary: str  # what it drops
    paper: str  # where it comes from ("" for a plain data-hygiene filter)
    options: tuple[Option, ...]
    apply: Callable = field(repr=False)  # apply(records, options, dropped) -> kept records
    module: str = ""

    def read_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """``given`` (text or values) typed and checked; the defaults for the others."""
        known = {o.name: o for o in self.options}
        unknown = sorted(set(given) - set(known))
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(known), 1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"filter {self.name}: unknown option(s) {', '.join(unknown)}{hint}; "
                             f"it takes: {', '.join(known) or 'none'}")
        return {name: (o.read(self.name, given[name]) if name in given else o.default)
                for name, o in known.items()}


_REGISTRY = Registry("pair filter", tuple(f"{__name__}.{m}" for m in BUILTIN_MODULES),
                     pattern=r"^[a-z][a-z0-9-]*$", pattern_words="lower-case letters, digits and -",
                     hint=" (or register one: docs/extending.md)")


def pair_filter(name: str, *, summary: str, paper: str = "",
                options: list[Option] | tuple[Option, ...] = ()) -> Callable:
    """Register the decorated ``apply(records, options, dropped) -> records`` as ``name``."""
    _REGISTRY.check_name(name)

    def register(apply: Callable) -> Callable:
        _REGISTRY.add(name, PairFilter(name, summary, paper, tuple(options), apply,
                                       apply.__module__), apply.__module__)
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
    name, _, rest = str(spec).strip().partition(":")
    entry = get(name.strip())
    given: dict[str, Any] = {}
    if rest.strip():
        items = [p.strip() for p in rest.split(",")]
        if len(items) == 1 and "=" not in items[0]:
            if not entry.options:
                raise ValueError(f"filter {entry.name} takes no options, got {rest!r}")
            given[entry.options[0].name] = items[0]
        else:
            for item in items:
                key, eq, value = item.partition("=")
                if not eq or not key.strip():
                    raise ValueError(f"filter {entry.name}: write {entry.name}:KEY=VALUE,..., "
                                     f"got {item!r}")
                if key.strip() in given:
                    raise ValueError(f"filter {entry.name}: {key.strip()} is given twice")
                given[key.strip()] = value.strip()
    return FilterSpec(entry.name, entry.read_options(given))


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
