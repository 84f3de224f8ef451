import warnings

import pytest

from prefalign.eval import (PreferenceLeakageWarning, compare_all, outcomes_from_scores,
                            preference_leakage, win_rate)


def test_ties_count_half_and_are_reported_apart():
    out = win_rate([1, 1, 0, -1])
    assert out["win_rate"] == pytest.approx(2.5 / 4)
    assert out["tie_rate"] == pytest.approx(0.25)
    assert out["win_rate_excluding_ties"] == pytest.approx(2 / 3)
    assert (out["wins"], out["ties"], out["losses"], out["n"]) == (2, 1, 1, 4)


def test_outcomes_from_pointwise_scores_with_tie_tolerance():
    assert outcomes_from_scores([1.0, 0.0, 0.5], [0.0, 1.0, 0.45], tie_tolerance=0.1) == [1, -1, 0]


def test_compare_all_calls_the_judge_per_prompt_and_checks_answers():
    judge = lambda p, a, b: (len(a) > len(b)) - (len(a) < len(b))
    assert compare_all(judge, ["p1", "p2", "p3"], ["aaa", "a", "aa"], ["a", "aaa", "bb"]) == [1, -1, 0]
    with pytest.raises(ValueError, match="prompt 0"):
        compare_all(lambda *a: 2, ["p"], ["x"], ["y"])
    with pytest.raises(ValueError, match="outcome 1"):
        win_rate([1, 5])


def test_same_model_and_same_family_warn(tiny_model_dir):
    llama = tiny_model_dir("llama")
    with pytest.warns(PreferenceLeakageWarning):
        reasons = preference_leakage(llama, llama)
    assert any(r.startswith("same model") for r in reasons)
    assert any("family" in r for r in reasons)


def test_unrelated_judge_gives_no_warning(tiny_model_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert preference_leakage(tiny_model_dir("qwen2"), tiny_model_dir("llama")) == []


def test_policy_trained_from_the_judge_is_inheritance(tiny_model_dir, tmp_path):
    import json, shutil

    judge = tiny_model_dir("llama")
    policy = tmp_path / "policy"
    shutil.copytree(judge, policy)
    cfg = json.loads((policy / "config.json").read_text())
    cfg.update(_name_or_path=str(judge), model_type="qwen2")   # as save_pretrained records it
    (policy / "config.json").write_text(json.dumps(cfg))
    reasons = preference_leakage(judge, policy, warn=False)
    assert len(reasons) == 1 and reasons[0].startswith("inheritance")


def test_hub_names_and_configs_are_compared_by_name():
    assert preference_leakage("org/judge-7b", {"_name_or_path": "org/judge-7b"},
                              warn=False)[0].startswith("same model")
    assert preference_leakage({"_name_or_path": "/m/judge", "model_type": "llama"},
                              {"_name_or_path": "/m/policy", "model_type": "qwen2"},
                              warn=False) == []
