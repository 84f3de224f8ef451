"""The sampling and back-end settings every command that samples shares (synth, iterate, eval):
declared once here, each with its help, and derived from by those commands' settings classes
(a command may give a field another default with `redefault`). The fields are `SamplingConfig`'s
and `make_generator`'s keyword arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefalign.core.settings import Settings, at_least, setting

from .types import SamplingConfig


def backend_names() -> tuple[str, ...]:
    from . import registry

    return registry.names()


def backend_rule():
    """A settings rule: a registered back end (checked when used, so a plugin's counts)."""
    return (lambda v: v in backend_names()), "one of " + ", ".join(backend_names())


@dataclass
class SamplingSettings(Settings):
    """How responses are sampled."""

    temperature: float = setting(0.8, help="sampling temperature; 0 = greedy")
    top_p: float = setting(1.0, help="nucleus sampling, in (0, 1]; 1 = off")
    top_k: int = setting(0, help="sample from the K likeliest tokens; 0 = off")
    max_new_tokens: int = setting(256, help="tokens per response at most")
    seed: int = setting(0, help="base seed; sample j of prompt i uses hash(seed, i, j)")

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              max_new_tokens=self.max_new_tokens)


@dataclass
class BackendSettings(Settings):
    """Which back end samples, and how it loads a model folder."""

    backend: str = setting("hf", help="generation back end: " + " | ".join(backend_names())
                           + " (docs/synth.md)")
    device: str | None = setting(None, help="hf back end and model scorers: cpu, cuda, cuda:N, "
                                 "... (default: cuda when available, else cpu)")
    dtype: str = setting("auto", help="hf and vllm back ends: auto | float32 | bfloat16 | "
                         "float16")
    trust_remote_code: bool = setting(False, help="run a model folder's own code (off unless "
                                      "turned on)")
    tensor_parallel_size: int = setting(1, help="vllm back end: GPUs one engine spans (vLLM's "
                                        "tensor parallelism)", rule=(at_least(1), ">= 1"))

    def generator_options(self) -> dict[str, Any]:
        """`make_generator`'s keyword arguments from these settings."""
        return dict(device=self.device, dtype=self.dtype,
                    trust_remote_code=self.trust_remote_code,
                    tensor_parallel_size=self.tensor_parallel_size)


@dataclass
class ServedSettings(Settings):
    """How a served back end (openai) is reached."""

    base_url: str | None = setting(None, help="openai back end: the server's URL, e.g. "
                                   "http://localhost:8000/v1, or several, comma-separated "
                                   "(requests spread over them; a failed one retried on the "
                                   "next); required with --backend openai")
    concurrency: int = setting(8, help="openai back end: requests in flight")
    timeout: float = setting(120.0, help="openai back end: seconds per request")
    max_retries: int = setting(5, help="openai back end: retries of a failed request, with "
                               "exponential backoff")

    def served_options(self) -> dict[str, Any]:
        return dict(base_url=self.base_url, concurrency=self.concurrency, timeout=self.timeout,
                    max_retries=self.max_retries)
