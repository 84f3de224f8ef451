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

from dataclasses import dataclass, field
from typing import Callable

from prefalign.core.registry import Registry

BUILTIN_MODULES = ("hf", "vllm", "openai_http")


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


_REGISTRY = Registry("back end", tuple(f"prefalign.generation.{m}" for m in BUILTIN_MODULES),
                     pattern=r"^[a-z][a-z0-9_]*$", pattern_words="lower-case letters, digits and _")


def generation_backend(name: str, *, summary: str, options: tuple[str, ...] = (),
                       served: bool = False, new_policy_each_round: bool = True,
                       shares_loaded_model: bool = False,
                       spec: Callable[[str], tuple[str, str | None]] | None = None) -> Callable:
    """Register the decorated ``build(model, base_url, options) -> Generator`` as ``name``."""
    _REGISTRY.check_name(name)

    def register(build: Callable) -> Callable:
        _REGISTRY.add(name, Backend(name, summary, build, tuple(options), served,
                                    new_policy_each_round, shares_loaded_model,
                                    spec or _plain_spec, build.__module__), build.__module__)
        return build

    return register


def backends() -> dict[str, Backend]:
    """Every registered back end, the built-ins first."""
    return _REGISTRY.all()


def names() -> tuple[str, ...]:
    return tuple(backends())


def get(name: str) -> Backend:
    return _REGISTRY.get(name)
