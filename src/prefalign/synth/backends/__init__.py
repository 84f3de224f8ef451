"""Generation back ends behind one interface (`Generator`): Hugging Face ``generate`` (default),
vLLM, and any OpenAI-compatible HTTP server.

``make_generator(spec)`` builds one from a string:

- ``PATH`` or ``hf:PATH``: a local Hugging Face model folder
- ``vllm:PATH``: vLLM in this process (GPU, or its CPU build)
- ``openai:BASE_URL#MODEL``: an OpenAI-compatible server, e.g.
  ``openai:http://localhost:8000/v1#Qwen/Qwen2.5-7B-Instruct``
"""

from __future__ import annotations

from .base import Generator


def make_generator(spec: str, **options) -> Generator:
    """A generator from ``spec`` (see the module docstring); ``options`` go to its constructor."""
    kind, sep, rest = spec.partition(":")
    if sep and kind == "vllm":
        from .vllm import VLLMGenerator

        return VLLMGenerator(rest, **_only(options, ("dtype", "trust_remote_code")))
    if sep and kind == "openai":
        from .openai_http import OpenAIHTTPGenerator

        url, hash_, model = rest.partition("#")
        if not hash_ or not model:
            raise ValueError(f"generator spec {spec!r}: write openai:BASE_URL#MODEL, e.g. "
                             "openai:http://localhost:8000/v1#my-model")
        return OpenAIHTTPGenerator(url, model, **_only(
            options, ("concurrency", "timeout", "max_retries", "backoff", "api_key_env")))
    from .hf import HFGenerator

    path = rest if (sep and kind == "hf") else spec
    return HFGenerator(path, **_only(options, ("device", "dtype", "batch_size",
                                               "trust_remote_code")))


def _only(options: dict, names) -> dict:
    return {k: v for k, v in options.items() if k in names and v is not None}


__all__ = ["Generator", "make_generator"]
