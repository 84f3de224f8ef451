"""The plumbing every component registry shares (scorers, generation back ends, pair
strategies, pair filters): names checked, duplicates refused, the built-ins loaded on first use
and listed first, unknown names answered with the closest one; and the options a component
declares (:class:`Option`), read from a ``NAME:OPTIONS`` spec (:func:`parse_options`). Each
registry keeps its own entry type and decorator; this holds the entries."""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass
from typing import Any

from .settings import Rule, coerce, type_words


@dataclass(frozen=True)
class Option:
    """One option of a component: its name, type, default, what it is, and what it accepts."""

    name: str
    hint: Any
    default: Any
    help: str
    rule: Rule | None = None
    required: bool = False  # must be given (a model path): no default

    def read(self, owner: str, value: Any) -> Any:
        """``value`` (text included) as this option's type, checked; ``owner`` names the
        component in errors ("filter rip")."""
        try:
            value = coerce(value, self.hint)
        except TypeError as e:
            raise ValueError(f"{owner}: {self.name} must be {e}, got {value!r}") from None
        if self.rule is not None and not self.rule[0](value):
            raise ValueError(f"{owner}: {self.name} must be {self.rule[1]}, got {value!r}")
        return value

    def describe(self) -> str:
        accepts = self.rule[1] if self.rule is not None else type_words(self.hint)
        default = "required" if self.required else (
            "default none" if self.default is None else f"default {self.default}")
        return f"{self.name}: {self.help} ({accepts}; {default})"


def split_spec(spec: str) -> tuple[str, str]:
    """``NAME`` or ``NAME:OPTIONS`` -> (NAME, OPTIONS)."""
    name, _, rest = str(spec).strip().partition(":")
    return name.strip(), rest.strip()


def parse_options(owner: str, options: tuple[Option, ...], text: str) -> dict[str, Any]:
    """``VALUE`` (the first option), ``KEY=VALUE,KEY=VALUE`` or nothing, as every option's
    typed, checked value (the defaults for those not given). Unknown keys name the closest."""
    given: dict[str, Any] = {}
    if text:
        items = [p.strip() for p in text.split(",")]
        if len(items) == 1 and "=" not in items[0]:
            if not options:
                raise ValueError(f"{owner} takes no options, got {text!r}")
            given[options[0].name] = items[0]
        else:
            for item in items:
                key, eq, value = item.partition("=")
                key = key.strip()
                if not eq or not key:
                    raise ValueError(f"{owner}: write KEY=VALUE,..., got {item!r}")
                if key in given:
                    raise ValueError(f"{owner}: {key} is given twice")
                given[key] = value.strip()
    known = {o.name: o for o in options}
    unknown = sorted(set(given) - set(known))
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), 1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"{owner}: unknown option(s) {', '.join(unknown)}{hint}; it takes: "
                         f"{', '.join(known) or 'none'}")
    missing = [o.name for o in options if o.required and o.name not in given]
    if missing:
        raise ValueError(f"{owner}: give {', '.join(f'{m}=...' for m in missing)} (required)")
    return {name: (o.read(owner, given[name]) if name in given else o.default)
            for name, o in known.items()}


class Registry:
    """Entries by name. ``what`` names one in messages ("scorer kind"); ``builtins`` are the
    modules whose import registers the built-ins (listed first, in this order); ``pattern`` is
    what a name may be, ``pattern_words`` that in words; ``hint`` ends an unknown-name error."""

    def __init__(self, what: str, builtins: tuple[str, ...], *, pattern: str,
                 pattern_words: str, hint: str = ""):
        self.what, self.builtins, self.hint = what, builtins, hint
        self.pattern, self.pattern_words = re.compile(pattern), pattern_words
        self.entries: dict[str, Any] = {}
        self._modules: dict[str, str] = {}  # name -> the module that registered it
        self._loaded = False

    def check_name(self, name: str) -> None:
        if not self.pattern.match(name):
            raise ValueError(f"{self.what} {name!r}: use {self.pattern_words}")

    def add(self, name: str, entry: Any, module: str) -> None:
        if name in self.entries:
            raise ValueError(f"{self.what} {name!r} is registered twice "
                             f"({self._modules[name]} and {module})")
        self.entries[name] = entry
        self._modules[name] = module

    def all(self) -> dict[str, Any]:
        """Every entry: the built-ins in ``builtins``' order (whichever was imported first),
        then the others in registration order."""
        if not self._loaded:
            self._loaded = True
            for module in self.builtins:
                importlib.import_module(module)
        order = {name: i for i, name in enumerate(self.entries)}

        def rank(name: str):
            module = self._modules[name]
            builtin = self.builtins.index(module) if module in self.builtins else len(self.builtins)
            return builtin, order[name]

        return {name: self.entries[name] for name in sorted(self.entries, key=rank)}

    def get(self, name: str) -> Any:
        known = self.all()
        if name not in known:
            close = difflib.get_close_matches(str(name), sorted(known), 1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown {self.what} {name!r}{hint}; use one of "
                             f"{', '.join(known)}{self.hint}")
        return known[name]
