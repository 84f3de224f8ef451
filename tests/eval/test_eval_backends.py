"""`prefalign eval --backend openai` samples the prompts from an OpenAI-compatible server (a
real local HTTP server here) and tokenizes its texts with the policy's tokenizer for lengths and
KL; the policy is not loaded for prompts alone."""

import json

from prefalign.cli import main
from synth.synth_helpers import Server


def test_eval_samples_prompts_from_an_openai_compatible_server(tiny_model_dir, tmp_path,
                                                               monkeypatch):
    from transformers import AutoTokenizer

    from prefalign.eval import policy as policy_module
    from prefalign.generation.types import sample_seed

    pol = str(tiny_model_dir("llama"))
    tok = AutoTokenizer.from_pretrained(pol)
    out = tmp_path / "eval"
    with Server(fail_first=0) as server:
        rc = main(["eval", "--model", pol, "--prompts", str(_prompts(tmp_path)),
                   "--backend", "openai", "--base-url", server.url, "--served-model", "tiny",
                   "--num-samples", "2", "--seed", "3", "--max-new-tokens", "9",
                   "--output", str(out), "--concurrency", "2"])
    assert rc == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["backend"] == "openai"
    texts = [s["responses"] for s in result["samples"]]
    assert texts == [[f"echo {q} seed={sample_seed(3, i, j) % 2**31}" for j in range(2)]
                     for i, q in enumerate(["1+1=", "hi"])]
    assert {b["model"] for _, b in server.bodies} == {"tiny"}
    assert {b["max_tokens"] for _, b in server.bodies} == {9}
    # lengths: the text as training tokenizes it, plus the end token
    want = [len(tok(t, add_special_tokens=False)["input_ids"]) + 1 for row in texts for t in row]
    assert result["lengths"]["policy"] == want

    # with a reference the policy is loaded for KL; policy == reference gives KL 0
    loaded = []
    real_load = policy_module._load
    monkeypatch.setattr(policy_module, "_load", lambda p, *a: loaded.append(str(p)) or
                        real_load(p, *a))
    with Server(fail_first=0) as server:
        res = policy_module.evaluate_policy(pol, ref_path=pol, prompts=["1+1="],
                                            backend="openai", base_url=server.url,
                                            served_model="tiny", num_samples=2)
    assert loaded == [pol, pol]
    m = res["metrics"]
    assert m["kl/samples"] == 2 and abs(m["kl/k1"]) < 1e-6 and abs(m["kl/k3"]) < 1e-6


def test_eval_openai_without_a_url_is_refused_before_loading(tiny_model_dir, tmp_path, capsys):
    rc = main(["eval", "--model", str(tiny_model_dir("llama")), "--prompts",
               str(_prompts(tmp_path)), "--backend", "openai", "--output", str(tmp_path / "o")])
    assert rc == 2 and "--base-url" in capsys.readouterr().err


def _prompts(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "1+1="}\n{"prompt": "hi"}\n')
    return path
