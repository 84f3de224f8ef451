"""The back end is a flag for every command that samples: `prefalign iterate --backend vllm`
loads each round's new policy into vLLM (a stand-in module here, as in test_synth_backends.py),
for synth and eval alike; `--backend openai` is refused by iterate with the reason."""

import json
import sys
import types
from dataclasses import dataclass

import pytest

from prefalign.cli import main
from synth_helpers import arithmetic_rows
from test_synth_backends import _StandInLLM


@dataclass
class _SamplingParams:
    n: int
    seed: int
    temperature: float
    top_p: float
    top_k: int
    max_tokens: int


class _RecordingLLM(_StandInLLM):
    models: list = []

    def __init__(self, model, **kwargs):
        type(self).models.append(model)
        super().__init__(model, **kwargs)


def test_iterate_backend_flag_loads_each_new_policy_into_vllm(tmp_path, write_prompts,
                                                               tiny_model_dir, monkeypatch):
    from transformers import AutoTokenizer

    model = tiny_model_dir("llama")
    _RecordingLLM.eos_id = AutoTokenizer.from_pretrained(str(model)).eos_token_id
    _RecordingLLM.models = []
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(
        LLM=_RecordingLLM, SamplingParams=_SamplingParams))
    prompts = write_prompts(arithmetic_rows(4))
    held_out = write_prompts(arithmetic_rows(2, chat=False), "held_out.jsonl")
    out = tmp_path / "run"
    rc = main(["iterate", "--backend", "vllm", "--model", str(model), "--prompts", str(prompts),
               "--eval-prompts", str(held_out), "--scorer", "verifier:synth_helpers:digit_share",
               "--output", str(out), "--rounds", "2", "--n", "4", "--max-new-tokens", "4",
               "--temperature", "1", "--max-steps", "1", "--train-batch-size", "2",
               "--no-progress"])
    assert rc == 0
    r1, r2 = str(out / "round-1" / "model"), str(out / "round-2" / "model")
    for k in (1, 2):
        assert json.loads((out / f"round-{k}" / "round.json").read_text())["trained"]
    # round 0 eval, then per round: synth from the previous policy, eval of the new one
    assert _RecordingLLM.models == [str(model), str(model), r1, r1, r2]
    manifest = json.loads((out / "round-2" / "data.manifest.json").read_text())
    assert manifest["model"] == r1 and manifest["backend"]["backend"] == "vllm"
    ev = json.loads((out / "round-2" / "eval.json").read_text())
    assert ev["examples"][0]["response"].startswith("s")  # the stand-in's answers


def test_iterate_refuses_the_openai_backend_with_the_reason(tmp_path, write_prompts,
                                                            tiny_model_dir, capsys):
    prompts = write_prompts(arithmetic_rows(2))
    rc = main(["iterate", "--backend", "openai", "--model", str(tiny_model_dir("llama")),
               "--prompts", str(prompts), "--scorer", "verifier:synth_helpers:digit_share",
               "--output", str(tmp_path / "run")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--backend openai" in err and "hf or vllm" in err
    assert not (tmp_path / "run").exists()
