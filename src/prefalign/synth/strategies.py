"""The pair-strategy registry: every value of ``--pairs``.

A strategy is one decorated function in one module, its metadata declared once::

    @pair_strategy("best-vs-median", output="pairwise", summary="best vs the median response")
    def best_vs_median(item, kept, opts, dropped) -> list:
        ...

It receives one prompt's kept responses after the common filtering (``kept``: (sample index,
text, score, length) tuples, at least two) and returns its records (`make_pair` builds a pair
and counts ties and gaps below ``--min-gap``). ``output`` is the records' kind (pairwise,
ranked, unpaired). ``--pairs``' accepted values and help, the manifest's ``kind`` and the table
in docs/synth.md (``scripts/registry_docs.py``) come from here. The built-ins are in
``synth/pairs.py``; a project's own register when its module is imported
(``prefalign --plugin MODULE``).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Callable

OUTPUTS = ("pairwise", "ranked", "unpaired")
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


@dataclass(frozen=True)
class PairStrategy:
    name: str
    output: str  # the kind of records it writes
    summary: str  # what it writes per prompt
    build: Callable = field(repr=False)  # build(item, kept, opts, dropped) -> records
    module: str = ""


_STRATEGIES: dict[str, PairStrategy] = {}


def pair_strategy(name: str, *, output: str, summary: str) -> Callable:
    """Register the decorated ``build(item, kept, opts, dropped) -> records`` as ``name``."""
    if not _NAME.match(name):
        raise ValueError(f"pair strategy {name!r}: use lower-case letters, digits and -")
    if output not in OUTPUTS:
        raise ValueError(f"pair strategy {name!r}: output must be one of {', '.join(OUTPUTS)}")

    def register(build: Callable) -> Callable:
        if name in _STRATEGIES:
            raise ValueError(f"pair strategy {name!r} is registered twice "
                             f"({_STRATEGIES[name].module} and {build.__module__})")
        _STRATEGIES[name] = PairStrategy(name, output, summary, build, build.__module__)
        return build

    return register


def _load_builtins() -> None:
    from . import pairs  # noqa: F401  (registers the built-ins)


def pair_strategies() -> dict[str, PairStrategy]:
    """Every registered strategy: the built-ins, then the others, in registration order."""
    _load_builtins()
    return dict(_STRATEGIES)


def get(name: str) -> PairStrategy:
    known = pair_strategies()
    if name not in known:
        close = difflib.get_close_matches(name, sorted(known), 1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"unknown pair strategy {name!r}{hint}; use one of "
                         f"{', '.join(known)} (or register one: docs/extending.md)")
    return known[name]
