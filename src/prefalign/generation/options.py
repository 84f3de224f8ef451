"""What the sampling and back-end settings mean, in one place, for every settings class that
samples (synth, iterate, eval): ``field -> help``. The fields are `SamplingConfig`'s and
`make_generator`'s keyword arguments."""

from __future__ import annotations

def backend_names() -> tuple[str, ...]:
    from . import registry

    return registry.names()


def backend_rule():
    """A settings rule: a registered back end (checked when used, so a plugin's counts)."""
    return (lambda v: v in backend_names()), "one of " + ", ".join(backend_names())


BACKEND_HELP = {
    "backend": "generation back end: " + " | ".join(backend_names()) + " (docs/synth.md)",
    "base_url": "openai back end: the server's URL, e.g. http://localhost:8000/v1 (required "
                "with --backend openai)",
    "concurrency": "openai back end: requests in flight",
    "timeout": "openai back end: seconds per request",
    "max_retries": "openai back end: retries of a failed request, with exponential backoff",
    "device": "hf back end and model scorers: cpu, cuda, cuda:N, ... (default: cuda when "
              "available, else cpu)",
    "dtype": "hf and vllm back ends: auto | float32 | bfloat16 | float16",
    "trust_remote_code": "run a model folder's own code (off unless turned on)",
}

SAMPLING_HELP = {
    "temperature": "sampling temperature; 0 = greedy",
    "top_p": "nucleus sampling, in (0, 1]; 1 = off",
    "top_k": "sample from the K likeliest tokens; 0 = off",
    "max_new_tokens": "tokens per response at most",
    "seed": "base seed; sample j of prompt i uses hash(seed, i, j)",
}
