"""The generation back-end registry: every value of ``--backend`` and every generator-spec prefix.

A back end is one decorated builder in its own module, its options and capabilities declared
once::

    @generation_backend("mybackend", summary="...", options=("dtype",), served=False,
                        new_policy_each_round=True)
    def build(model, base_url, options) -> Generator:
        return MyGenerator(model, **options)

The capabilities are what other code asks instead of a back end's name: ``served`` (the model is
a name on a server at ``base_url``, not a folder here), ``new_policy_each_round`` (it can load
the policy `prefalign iterate` trained the round before) and ``shares_loaded_model`` (it samples
from a model object this process already loaded: eval's policy). ``spec`` reads the part of a
generator spec after ``NAME:`` into (model, base_url). The built-ins register in ``hf.py``,
``vllm.py`` and ``openai_http.py``; a project's own when its module is imported
(``prefalign --plugin MODULE``).
"""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass, field
from typing import Callable

BUILTIN_MODULES = ("hf", "vllm", "openai_http")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _plain_spec(rest: str) -> tuple[str, str | None]:
    return rest, None


@dataclass(frozen=True)
class Backend:
    name: str
    summary: str
    build: Callable = field(repr=False)  # build(model, base_url, options) -> Generator
    options: tuple[str, ...] = ()  # the keyword options its generator takes
    served: bool = False
    new_policy_each_round: bool = True
    shares_loaded_model: bool = False
    spec: Callable[[str], tuple[str, str | None]] = field(default=_plain_spec, repr=False)
    module: str = ""


_BACKENDS: dict[str, Backend] = {}
_loaded = False


def generation_backend(name: str, *, summary: str, options: tuple[str, ...] = (),
                       served: bool = False, new_policy_each_round: bool = True,
                       shares_loaded_model: bool = False,
                       spec: Callable[[str], tuple[str, str | None]] | None = None) -> Callable:
    """Register the decorated ``build(model, base_url, options) -> Generator`` as ``name``."""
    if not _NAME.match(name):
        raise ValueError(f"back end {name!r}: use lower-case letters, digits and _")

    def register(build: Callable) -> Callable:
        if name in _BACKENDS:
            raise ValueError(f"back end {name!r} is registered twice ({_BACKENDS[name].module} "
                             f"and {build.__module__})")
        _BACKENDS[name] = Backend(name, summary, build, tuple(options), served,
                                  new_policy_each_round, shares_loaded_model,
                                  spec or _plain_spec, build.__module__)
        return build

    return register


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(f"prefalign.generation.{module}")


def backends() -> dict[str, Backend]:
    """Every registered back end: the built-ins in BUILTIN_MODULES' order, then the others."""
    _load_builtins()
    modules = [f"prefalign.generation.{m}" for m in BUILTIN_MODULES]
    order = {name: i for i, name in enumerate(_BACKENDS)}
    rank = lambda b: (modules.index(b.module) if b.module in modules else len(modules),  # noqa: E731
                      order[b.name])
    return {b.name: b for b in sorted(_BACKENDS.values(), key=rank)}


def names() -> tuple[str, ...]:
    return tuple(backends())


def get(name: str, *, flag: str = "back end") -> Backend:
    known = backends()
    if name not in known:
        close = difflib.get_close_matches(str(name), sorted(known), 1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"unknown {flag} {name!r}{hint}; use one of {', '.join(known)}")
    return known[name]
