"""Generation: sampling back ends behind one interface (`Generator`) and one factory, used by
synth, eval, the LLM judges and iterate alike.

Back ends: Hugging Face ``generate`` (``hf``, the default), vLLM in this process (``vllm``, GPU
or its CPU build) and any OpenAI-compatible HTTP server (``openai``).

``make_generator(model, backend=..., **options)`` builds one. Without ``backend`` the back end is
read from a spec string (what ``judge:SPEC`` scorers take):

- ``PATH`` or ``hf:PATH``: a local Hugging Face model folder
- ``vllm:PATH``: vLLM in this process
- ``openai:BASE_URL#MODEL``: an OpenAI-compatible server, e.g.
  ``openai:http://localhost:8000/v1#Qwen/Qwen2.5-7B-Instruct``

The values passed in and out (`PromptItem`, `SamplingConfig`, `Completion`, `sample_seed`) are in
`prefalign.generation.types`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import Generator
from .types import Completion, PromptItem, SamplingConfig, response_value, sample_seed

from . import registry
from .registry import generation_backend


def __getattr__(name: str):
    if name == "BACKENDS":  # the registered back ends' names (plugins may add some)
        return registry.names()
    raise AttributeError(name)


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """``(backend, model, base_url)`` from a spec string (see the module docstring): ``NAME:REST``
    for a registered back end NAME, else a model folder for hf."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in registry.backends():
        model, url = registry.get(kind).spec(rest)
        return kind, model, url
    return "hf", spec, None


def check_model_path(model: str, backend: str) -> None:
    """A model folder that does not exist (hf, vllm) is named, not sent to the Hub loader. A
    name like ``org/model`` (a Hub id, one slash) is left to the back end."""
    looks_like_path = (os.path.isabs(model) or model.startswith((".", "~"))
                       or model.count("/") != 1)
    path = Path(model).expanduser()
    if looks_like_path and not path.exists():
        raise FileNotFoundError(f"--model {model}: no such folder; the {backend} back end loads "
                                "a model folder (written by save_pretrained)")
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"--model {model}: is a file; give the model's folder (the one "
                                 "holding config.json)")


def make_generator(model: str, backend: str | None = None, *, base_url: str | None = None,
                   **options) -> Generator:
    """The one factory of generation back ends (`registry`).

    ``backend`` a registered name (None: parse ``model`` as a spec string, see the module
    docstring). ``model``: the model folder, or the served model name for a served back end
    (openai, which also needs ``base_url``). ``options`` go to the back end's builder, those it
    does not declare dropped (hf: device, dtype, batch_size, trust_remote_code, model_obj,
    tokenizer; vllm: dtype, trust_remote_code, tensor_parallel_size; openai: concurrency, timeout, max_retries,
    backoff, api_key_env).
    """
    if backend is None:
        backend, model, spec_url = parse_spec(model)
        base_url = base_url or spec_url
    entry = registry.get(backend)
    if options.get("tensor_parallel_size") not in (None, 1) and \
            "tensor_parallel_size" not in entry.options:  # asked for, would be dropped
        raise ValueError(f"--tensor-parallel-size {options['tensor_parallel_size']}: the "
                         f"{backend} back end has no tensor parallelism (vllm has)")
    opts = {k: v for k, v in options.items() if k in entry.options and v is not None}
    if not entry.served and opts.get("model_obj") is None:
        check_model_path(str(model), backend)
    return entry.build(model, base_url, opts)


__all__ = ["BACKENDS", "Generator", "make_generator", "parse_spec", "check_model_path",
           "generation_backend", "registry",
           "Completion", "PromptItem", "SamplingConfig", "response_value", "sample_seed"]
