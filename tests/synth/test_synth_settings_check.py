"""Sampling and count settings are checked before any work, one line naming the flag."""

import pytest

from prefalign.generation.types import SamplingConfig
from prefalign.synth import SynthConfig, run_synth
from prefalign.loop import IterateConfig, run_iterate


class NoGenerator:
    name = "none"

    def describe(self):
        return {"backend": self.name}

    def generate(self, *a, **k):
        raise AssertionError("generated")


@pytest.mark.parametrize("field,value,flag", [
    ("top_p", 0.0, "--top-p"), ("top_p", 1.5, "--top-p"), ("top_p", -0.1, "--top-p"),
    ("temperature", -1.0, "--temperature"), ("temperature", float("nan"), "--temperature"),
    ("top_k", -1, "--top-k"), ("max_new_tokens", 0, "--max-new-tokens"),
    ("n", 0, "--n"), ("limit", -1, "--limit"), ("limit", 0, "--limit")])
def test_synth_refuses_bad_settings_before_reading_prompts(tmp_path, field, value, flag):
    cfg = SynthConfig(prompts=str(tmp_path / "missing.jsonl"), output=str(tmp_path / "o.jsonl"),
                      scorer="verifier:prefalign.synth.checks:answer_closeness",
                      generator=NoGenerator(), progress=False)
    setattr(cfg, field, value)
    with pytest.raises(ValueError, match=f"^{flag} ") as info:
        run_synth(cfg)
    assert "\n" not in str(info.value) and "must be" in str(info.value)


def test_sampling_config_checks_its_ranges():
    SamplingConfig(temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=1)
    SamplingConfig(temperature=2, top_p=0.01)
    with pytest.raises(ValueError, match=r"--top-p 0: must be in \(0, 1\]"):
        SamplingConfig(top_p=0)


def test_eval_refuses_bad_sampling_before_loading(tmp_path):
    from prefalign.eval.policy import evaluate_policy

    for kwargs, flag in (({"top_p": 0.0}, "--top-p"), ({"temperature": -1.0}, "--temperature"),
                         ({"max_new_tokens": 0}, "--max-new-tokens"),
                         ({"num_samples": 0}, "--num-samples")):
        with pytest.raises(ValueError, match=f"^{flag} "):
            evaluate_policy(tmp_path / "no-model", prompts=["q"], **kwargs)


def test_iterate_refuses_zero_rounds_and_empty_eval_prompts(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    base = dict(model=str(tmp_path / "m"), prompts=str(tmp_path / "p.jsonl"),
                scorer="verifier:a.b:c",
                output=str(tmp_path / "run"), progress=False)
    with pytest.raises(ValueError, match="^--rounds 0: must be"):
        run_iterate(IterateConfig(rounds=0, **base))
    with pytest.raises(ValueError, match="^--eval-prompts .*no prompts"):
        run_iterate(IterateConfig(eval_prompts=str(empty), **base))
    with pytest.raises(ValueError, match="^--eval-temperature -1"):
        run_iterate(IterateConfig(eval_temperature=-1.0, **base))
    assert not (tmp_path / "run").exists()
