"""The back-end options every command that samples takes (synth, iterate, eval), in one place:
``(flag, field, type, help)``; the fields are `make_generator`'s keyword arguments."""

from __future__ import annotations

BACKEND_FLAGS = [
    ("--backend", "backend", str, "generation back end: hf | vllm | openai (default hf)"),
    ("--base-url", "base_url", str, "openai back end: the server's URL, e.g. "
                                    "http://localhost:8000/v1 (required with --backend openai)"),
    ("--concurrency", "concurrency", int, "openai back end: requests in flight (default 8)"),
    ("--timeout", "timeout", float, "openai back end: seconds per request (default 120)"),
    ("--max-retries", "max_retries", int, "openai back end: retries of a failed request, with "
                                          "exponential backoff (default 5)"),
]
