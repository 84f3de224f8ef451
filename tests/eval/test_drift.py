"""Behaviour drift: the share of responses matching a pattern set, before (the baseline) and
after (the policy)."""

import json

import pytest

from prefalign.eval.drift import drift, read_patterns


def test_patterns_are_read_and_counted(tmp_path):
    path = tmp_path / "refusals.txt"
    path.write_text("# refusals\nI can(no|')t help\n\nsorry\n")
    patterns = read_patterns(str(path))
    metrics, rows = drift(patterns, ["Sorry, no.", "4", "I can't help with that", "5"],
                          ["sorry", "SORRY!", "sure", "ok"])
    assert metrics == {"drift/policy": 0.5, "drift/baseline": 0.5, "drift/change": 0.0}
    assert rows == [{"pattern": "I can(no|')t help", "policy": 0.25, "baseline": 0.0},
                    {"pattern": "sorry", "policy": 0.25, "baseline": 0.5}]
    (tmp_path / "bad.txt").write_text("fine\n(unclosed\n")
    with pytest.raises(ValueError, match=r"bad.txt, line 2: not a regular expression"):
        read_patterns(str(tmp_path / "bad.txt"))
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="no pattern in it"):
        read_patterns(str(tmp_path / "empty.txt"))


def test_eval_reports_drift_against_a_baseline_file(tmp_path, tiny_model_dir):
    from prefalign.cli import main

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"q{i}"}) + "\n" for i in range(3)))
    baseline = tmp_path / "b.jsonl"
    baseline.write_text("".join(json.dumps({"response": r}) + "\n"
                                for r in ("Sorry, I cannot.", "sorry", "fine")))
    patterns = tmp_path / "p.txt"
    patterns.write_text("sorry\n")
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(tiny_model_dir("llama")), "--prompts", str(prompts),
                 "--max-new-tokens", "4", "--output", str(out), "--device", "cpu",
                 "--patterns", str(patterns), "--baseline", str(baseline)]) == 0
    result = json.loads((out / "eval.json").read_text())
    texts = [t for s in result["samples"] for t in s["responses"]]
    policy_share = sum("sorry" in t.lower() for t in texts) / len(texts)
    assert result["metrics"]["drift/policy"] == pytest.approx(policy_share)
    assert result["metrics"]["drift/baseline"] == pytest.approx(2 / 3)
    assert result["drift"][0]["pattern"] == "sorry"
