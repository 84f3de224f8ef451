"""Any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, OpenAI itself) via
``POST {base_url}/chat/completions``, with the standard library only (urllib + threads).

One request per sample, carrying that sample's seed, so samples are reproducible as far as the
server honours ``seed``. At most ``concurrency`` requests are in flight; each has a ``timeout``;
connection errors, timeouts, 408, 409, 429 and 5xx are retried up to ``max_retries`` times with
exponential backoff (``backoff * 2**attempt`` seconds, or the server's Retry-After when larger).
Other HTTP errors (400, 401, 404, ...) fail at once: one line with the status, the URL and the
start of the server's message.

Redirects are never followed: a request carries the API key, and urllib would send it on to
whatever address a redirect names (turning the POST into a GET). A 3xx answer is an error that
names the location, so that ``base_url`` can be set to it if it is the right server.

A server returns text only (decoded after the prompt by its own incremental detokenizer, as vLLM's
and TGI's do), no token ids: training tokenizes these responses' text (the data summary counts
them as "from text"), and with a tokenizer that does not round-trip text exactly the trained
tokens may differ from the sampled ones. Use the hf or vllm back end to train on sampled ids.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from .types import Completion, PromptItem, SamplingConfig
from .base import regroup, requests
from .registry import generation_backend

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class HTTPGenerationError(ConnectionError):
    """A request failed for good (a non-retryable status, a redirect, an answer that is not a
    chat completion, or retries exhausted); the message is one line."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Answer a 3xx with an HTTPError (handled in `_one`) instead of following it."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


class OpenAIHTTPGenerator:
    name = "openai"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout: float = 120.0, max_retries: int = 5, backoff: float = 1.0,
                 extra_body: dict | None = None):
        # several servers of the same model: request r goes to server r mod S (its retries to
        # the next ones); each request has its own seed, so which one answers does not matter
        self.base_urls = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()]
        if not self.base_urls:
            raise ValueError(f"--base-url {base_url!r}: give the server's URL")
        self.base_url = ",".join(self.base_urls)
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.extra_body = dict(extra_body or {})
        self.retries = 0  # requests retried so far (for the manifest)

    def describe(self) -> dict:
        return {"backend": self.name, "base_url": self.base_url, "model": self.model,
                "concurrency": self.concurrency, "timeout": self.timeout,
                "max_retries": self.max_retries}

    def generate(self, prompts: Sequence[PromptItem], n: int, sampling: SamplingConfig,
                 seed: int = 0) -> list[list[Completion]]:
        reqs = requests(prompts, n, seed)
        with ThreadPoolExecutor(self.concurrency) as pool:
            flat = list(pool.map(lambda k: self._one(prompts[reqs[k][0]], reqs[k][2], sampling,
                                                     server=k), range(len(reqs))))
        return regroup(prompts, n, flat)

    def _body(self, prompt: PromptItem, seed: int, sampling: SamplingConfig) -> dict:
        body = {"model": self.model, "messages": prompt.messages(), "n": 1,
                "max_tokens": sampling.max_new_tokens, "temperature": sampling.temperature,
                "top_p": sampling.top_p, "seed": seed % (2 ** 31)}
        if sampling.top_k:
            body["top_k"] = sampling.top_k  # vLLM/SGLang extension; OpenAI ignores unknown keys
        body.update(self.extra_body)
        return body

    def _one(self, prompt: PromptItem, seed: int, sampling: SamplingConfig,
             server: int = 0) -> Completion:
        data = json.dumps(self._body(prompt, seed, sampling)).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            url = f"{self.base_urls[(server + attempt) % len(self.base_urls)]}/chat/completions"
            wait = self.backoff * (2 ** attempt)
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method="POST")
                with _OPENER.open(req, timeout=self.timeout) as resp:
                    body = resp.read()
                break
            except urllib.error.HTTPError as e:
                if 300 <= e.code < 400:
                    where = e.headers.get("Location") if e.headers else None
                    raise HTTPGenerationError(
                        f"{url}: HTTP {e.code} redirect to {where or '(no Location given)'}; "
                        "redirects are not followed (the request carries the API key): if that "
                        "is the server, give its address as the base URL") from None
                detail = _one_line(e.read().decode("utf-8", "replace"))
                last = f"HTTP {e.code} {e.reason}" + (f": {detail}" if detail else "")
                if e.code not in RETRY_STATUS:
                    raise HTTPGenerationError(f"{url}: {last}") from None
                retry_after = e.headers.get("Retry-After") if e.headers else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    wait = max(wait, float(retry_after))
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = _one_line(f"{type(e).__name__}: {getattr(e, 'reason', e)}")
            if attempt < self.max_retries:
                self.retries += 1
                time.sleep(wait)
        else:
            raise HTTPGenerationError(f"{url}: giving up after {self.max_retries + 1} attempts; "
                                      f"last error: {last}")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise HTTPGenerationError(f"{url}: the answer is not JSON: "
                                      f"{_one_line(body.decode('utf-8', 'replace'))}") from None
        return _completion(payload, seed, url)


def _completion(payload: dict, seed: int, url: str) -> Completion:
    try:
        choice = payload["choices"][0]
        text = choice["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise HTTPGenerationError(f"{url}: unexpected response (no choices[0].message.content): "
                                  f"{_one_line(json.dumps(payload))}") from None
    finish = "length" if choice.get("finish_reason") == "length" else "stop"
    tokens = (payload.get("usage") or {}).get("completion_tokens")
    return Completion(text=text, seed=seed, finish_reason=finish, num_tokens=tokens)


def _spec(rest: str) -> tuple[str, str | None]:
    url, hash_, model = rest.partition("#")
    if not hash_ or not model:
        raise ValueError(f"generator spec 'openai:{rest}': write openai:BASE_URL#MODEL, e.g. "
                         "openai:http://localhost:8000/v1#my-model")
    return model, url


@generation_backend("openai", summary="any OpenAI-compatible HTTP server (`--base-url`)",
                    options=("concurrency", "timeout", "max_retries", "backoff", "api_key_env",
                             "api_key"),
                    served=True, new_policy_each_round=False, spec=_spec)
def _build(model, base_url, options):
    if not base_url:
        raise ValueError("the openai back end needs --base-url (e.g. http://localhost:8000/v1)")
    return OpenAIHTTPGenerator(base_url, model, **options)
