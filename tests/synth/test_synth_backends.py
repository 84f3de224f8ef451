"""Generation back ends: per-sample seeds, the OpenAI-compatible HTTP client against a real
local server (with a 503 to retry), and the vLLM adapter against a stand-in module (real vLLM
runs in test_synth_vllm.py)."""

import pytest

from prefalign.generation import make_generator
from prefalign.generation.hf import HFGenerator
from prefalign.generation.openai_http import HTTPGenerationError, OpenAIHTTPGenerator
from prefalign.generation.types import PromptItem, SamplingConfig, sample_seed
from synth_helpers import ScriptedServer, Server, chat_answer


@pytest.fixture(scope="module")
def hf(tiny_model_dir):
    return HFGenerator(str(tiny_model_dir("llama")), batch_size=4)


def prompts(k, start=0):
    return [PromptItem(i, [{"role": "user", "content": f"What is {i}+{i}?"}])
            for i in range(start, start + k)]


def test_each_sample_depends_only_on_its_seed_not_on_batching(hf):
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=10)
    whole = hf.generate(prompts(3), 3, sampling, seed=7)
    hf.batch_size = 2
    try:
        later = hf.generate(prompts(2, start=1), 3, sampling, seed=7)  # a resumed run's view
    finally:
        hf.batch_size = 4
    assert later == whole[1:]
    assert [c.seed for c in whole[2]] == [sample_seed(7, 2, j) for j in range(3)]
    assert len({c.text for c in whole[0]}) > 1, "different seeds give different samples"
    other = hf.generate(prompts(1), 3, sampling, seed=8)
    assert other[0] != whole[0]


def test_greedy_ignores_seeds_and_reports_length_finish(hf):
    out = hf.generate(prompts(1), 2, SamplingConfig(temperature=0.0, max_new_tokens=5))
    assert out[0][0].text == out[0][1].text
    assert out[0][0].finish_reason == "length" and out[0][0].num_tokens == 5


def test_top_k_one_is_greedy(hf):
    greedy = hf.generate(prompts(1), 1, SamplingConfig(temperature=0.0, max_new_tokens=6))
    top1 = hf.generate(prompts(1), 1, SamplingConfig(temperature=1.0, top_k=1, max_new_tokens=6))
    assert greedy[0][0].text == top1[0][0].text


def test_http_backend_retries_a_503_and_keeps_order():
    with Server(fail_first=1) as server:
        gen = OpenAIHTTPGenerator(server.url, "tiny", concurrency=3, timeout=5, backoff=0.01)
        items = [PromptItem(i, f"q{i}", system="be brief") for i in range(3)]
        out = gen.generate(items, 2, SamplingConfig(temperature=0.7, max_new_tokens=8), seed=1)
    assert gen.retries == 1 and server.calls == 7
    for i, comps in enumerate(out):
        for j, c in enumerate(comps):
            assert c.text == f"echo q{i} seed={sample_seed(1, i, j) % 2**31}"
            assert c.seed == sample_seed(1, i, j) and c.num_tokens == 3
    path, body = server.bodies[-1]
    assert path == "/v1/chat/completions"
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["max_tokens"] == 8 and body["temperature"] == 0.7 and body["model"] == "tiny"


def test_http_backend_spreads_requests_over_several_servers():
    """Request r goes to server r mod 2; a failed request is retried on the next server; the
    samples are the one server's (each request has its own seed)."""
    items = [PromptItem(i, f"q{i}") for i in range(3)]
    sampling = SamplingConfig(temperature=0.7, max_new_tokens=8)
    with Server(fail_first=0) as one:
        alone = OpenAIHTTPGenerator(one.url, "tiny", concurrency=2, timeout=5).generate(
            items, 2, sampling, seed=1)
    with Server(fail_first=1) as a, Server(fail_first=0) as b:
        gen = OpenAIHTTPGenerator(f"{a.url}, {b.url}", "tiny", concurrency=1, timeout=5,
                                  backoff=0.01)
        out = gen.generate(items, 2, sampling, seed=1)
    assert [[c.text for c in row] for row in out] == [[c.text for c in row] for row in alone]
    # a's first request (r = 0) failed and went to b: a answered r = 2, 4; b r = 0, 1, 3, 5
    assert (a.calls, b.calls, gen.retries) == (3, 4, 1)
    assert gen.describe()["base_url"] == f"{a.url},{b.url}"


def test_http_backend_gives_up_after_max_retries_with_the_last_error():
    with Server(fail_first=100) as server:
        gen = OpenAIHTTPGenerator(server.url, "tiny", max_retries=2, backoff=0.01, timeout=5)
        with pytest.raises(HTTPGenerationError, match="after 3 attempts.*HTTP 503"):
            gen.generate([PromptItem(0, "q")], 1, SamplingConfig())
    assert server.calls == 3


def test_http_backend_does_not_retry_a_client_error():
    with Server(fail_first=100, status=400) as server:
        gen = OpenAIHTTPGenerator(server.url, "tiny", max_retries=3, backoff=0.01, timeout=5)
        with pytest.raises(HTTPGenerationError, match="HTTP 400"):
            gen.generate([PromptItem(0, "q")], 1, SamplingConfig())
    assert server.calls == 1


def test_generator_specs():
    gen = make_generator("openai:http://127.0.0.1:9/v1#some-model")
    assert isinstance(gen, OpenAIHTTPGenerator) and gen.model == "some-model"
    with pytest.raises(ValueError, match="openai:BASE_URL#MODEL"):
        make_generator("openai:http://127.0.0.1:9/v1")


class _StandInLLM:
    """Records what the adapter asks of vLLM's ``LLM`` (argument names as in vLLM 0.32/0.33) and
    answers each request with two ids, then, by seed % 4, as vLLM ends a response: the
    tokenizer's EOS (stop_reason None), an end id of the generation config (stop_reason that id),
    the length limit, or a stop string (no end id kept)."""

    eos_id = None  # set by the test

    def __init__(self, model, **kwargs):
        self.kwargs, self.calls = kwargs, []

    def generate(self, prompts, sampling_params, *, use_tqdm=True):
        from types import SimpleNamespace as NS

        self.calls.append((prompts, sampling_params))
        outs = []
        for prompt, p in zip(prompts, sampling_params):
            ids = [prompt["prompt_token_ids"][-1], p.seed % 50]
            case = p.seed % 4
            finish, stop_reason = {0: ("stop", None), 1: ("stop", self.eos_id),
                                   2: ("length", None), 3: ("stop", "\n\n")}[case]
            ids += [self.eos_id] if case in (0, 1) else []
            outs.append(NS(outputs=[NS(text=f"s{p.seed}", token_ids=tuple(ids),
                                       stop_reason=stop_reason, finish_reason=finish)]))
        return outs


def test_vllm_adapter_sends_token_ids_and_one_seeded_request_per_sample(tiny_model_dir,
                                                                       monkeypatch):
    """The adapter's side of the vLLM back end, against a stand-in ``vllm`` module: prompts go
    as the same token ids as training's, one SamplingParams per sample with its own seed, and the
    answers come back grouped per prompt. Real vLLM runs in test_synth_vllm.py."""
    import sys
    import types
    from dataclasses import dataclass

    from transformers import AutoTokenizer

    from prefalign.data.tokenization import tokenize_prompt

    @dataclass
    class SamplingParams:
        n: int
        seed: int
        temperature: float
        top_p: float
        top_k: int
        max_tokens: int

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(
        LLM=_StandInLLM, SamplingParams=SamplingParams))
    from prefalign.generation.vllm import VLLMGenerator

    path = str(tiny_model_dir("llama"))
    _StandInLLM.eos_id = AutoTokenizer.from_pretrained(path).eos_token_id
    gen = VLLMGenerator(path, gpu_memory_utilization=0.3)
    assert gen.llm.kwargs["gpu_memory_utilization"] == 0.3
    items = prompts(2)
    out = gen.generate(items, 3, SamplingConfig(temperature=0.8, top_k=0, max_new_tokens=7), seed=4)
    sent, params = gen.llm.calls[0]
    tok = AutoTokenizer.from_pretrained(path)
    assert [s["prompt_token_ids"] for s in sent] == \
        [tokenize_prompt(p.prompt, tok) for p in items for _ in range(3)]
    assert [p.seed for p in params] == [sample_seed(4, i, j) for i in range(2) for j in range(3)]
    assert {(p.n, p.temperature, p.top_k, p.max_tokens) for p in params} == {(1, 0.8, -1, 7)}
    assert [[c.seed for c in row] for row in out] == [[sample_seed(4, i, j) for j in range(3)]
                                                      for i in range(2)]
    cases = set()
    for row in out:
        for c in row:
            case = c.seed % 4
            cases.add(case)
            assert c.text == f"s{c.seed}"
            assert c.finish_reason == ("length" if case == 2 else "stop")
            # the end id is kept in token_ids but not counted, as in the HF back end
            assert c.num_tokens == 2 and len(c.token_ids) == 2 + (case in (0, 1)), case
    assert cases == {0, 1, 2, 3}, "the seeds should cover every way of ending"


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_http_backend_never_follows_a_redirect_with_the_api_key(code):
    """A redirect to another origin would carry the Authorization header there (and urllib turns
    the POST into a GET): it is an error naming the location, and the other server sees nothing."""
    with ScriptedServer(lambda *a: (200, {"Content-Type": "application/json"},
                                    chat_answer("from elsewhere"))) as elsewhere:
        target = elsewhere.url + "/chat/completions"
        with ScriptedServer(lambda *a: (code, {"Location": target}, b"moved")) as server:
            gen = OpenAIHTTPGenerator(server.url, "tiny", api_key="sk-secret", max_retries=0,
                                      timeout=5)
            with pytest.raises(HTTPGenerationError, match=f"HTTP {code} redirect to {target}"):
                gen.generate([PromptItem(0, "q")], 1, SamplingConfig())
        assert server.requests[0][2].get("Authorization") == "Bearer sk-secret"
    assert elsewhere.requests == []


@pytest.mark.parametrize("status", [401, 403, 404])
def test_an_http_error_is_one_line_with_status_and_url(status):
    body = b'{"error": {\n  "message": "Incorrect API key provided",\n  "type": "auth"\n}}\n'
    with ScriptedServer(lambda *a: (status, {"Content-Type": "application/json"}, body)) as server:
        gen = OpenAIHTTPGenerator(server.url, "tiny", api_key="sk-wrong", max_retries=2,
                                  backoff=0.01, timeout=5)
        with pytest.raises(HTTPGenerationError) as info:
            gen.generate([PromptItem(0, "q")], 1, SamplingConfig())
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{server.url}/chat/completions: HTTP {status} ")
    assert "Incorrect API key provided" in message
    assert len(server.requests) == 1  # not retried


def test_an_answer_that_is_not_json_is_one_line():
    with ScriptedServer(lambda *a: (200, {}, b"<html>\n<body>login</body>\n</html>")) as server:
        gen = OpenAIHTTPGenerator(server.url, "tiny", max_retries=0, timeout=5)
        with pytest.raises(HTTPGenerationError, match="the answer is not JSON: <html> <body>"):
            gen.generate([PromptItem(0, "q")], 1, SamplingConfig())


def test_vllm_tensor_parallelism_reaches_the_engine(tiny_model_dir, monkeypatch):
    """--tensor-parallel-size is vLLM's own: handed to its engine (a stand-in records it)."""
    import sys
    import types

    from prefalign.generation import make_generator

    seen = {}

    class LLM:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM))
    make_generator(str(tiny_model_dir("llama")), "vllm", tensor_parallel_size=2, device="cpu",
                   dtype="auto", trust_remote_code=False)
    assert seen["tensor_parallel_size"] == 2


def test_tensor_parallelism_is_refused_where_it_would_be_dropped(tiny_model_dir):
    from prefalign.generation import make_generator

    with pytest.raises(ValueError, match="the hf back end has no tensor parallelism"):
        make_generator(str(tiny_model_dir("llama")), "hf", tensor_parallel_size=2)
