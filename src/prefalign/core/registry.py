"""The plumbing every component registry shares (scorers, generation back ends, pair
strategies): names checked, duplicates refused, the built-ins loaded on first use and listed
first, unknown names answered with the closest one. Each registry keeps its own entry type and
decorator; this holds the entries."""

from __future__ import annotations

import difflib
import importlib
import re
from typing import Any


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
