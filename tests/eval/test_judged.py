"""Judged win rates: both orders asked, ties and position bias counted, a bootstrap interval,
the length-controlled win rate against a hand-fitted regression, Cohen's κ by hand, and
`prefalign eval --judge SPEC --baseline FILE` against a judge served over HTTP."""

import json
import math
import re
from pathlib import Path

import pytest

from prefalign.eval.judged import (bootstrap_interval, cohen_kappa, judge_both_orders,
                                   length_controlled, logistic_fit, summarise)
from prefalign.generation.types import Completion


class Judge:
    """A generator answering pairwise questions by ``rule(a, b) -> 'A' | 'B' | 'tie' | None``
    (None: an answer without a verdict)."""

    name = "scripted"

    def __init__(self, rule):
        self.rule = rule

    def describe(self):
        return {"backend": self.name}

    def generate(self, prompts, n, sampling, seed=0):
        out = []
        for p in prompts:
            q = p.prompt[-1]["content"]
            a = q.split("[Response A]\n")[1].split("\n\n[Response B]")[0]
            b = q.split("[Response B]\n")[1].split("\n\nCompare the two")[0]
            verdict = self.rule(a, b)
            out.append([Completion("no idea" if verdict is None else f"Verdict: {verdict}", 0)])
        return out


def longer(a, b):
    return "A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"


def test_both_orders_ties_and_position_bias():
    prompts = ["q0", "q1", "q2", "q3"]
    policy = ["long answer", "x", "same", "pp"]
    baseline = ["short", "longer one", "same", "bb"]
    # prompt 3: the judge always says A (position only): 1/2, biased; prompt 2: ties
    rule = lambda a, b: "A" if {a, b} == {"pp", "bb"} else longer(a, b)  # noqa: E731
    judged = judge_both_orders(Judge(rule), prompts, policy, baseline)
    assert judged.scores == [1.0, 0.0, 0.5, 0.5]
    assert judged.first == ["a", "b", "tie", "a"] and judged.swapped == ["b", "a", "tie", "a"]
    m = summarise(judged, policy_lengths=[2, 1, 1, 1], baseline_lengths=[1, 2, 1, 1],
                  resamples=200)
    assert m["win_rate"] == 0.5 and m["tie_rate"] == 0.5 and m["position_bias_rate"] == 0.25
    assert m["unparsed"] == 0 and m["ci_low"] <= 0.5 <= m["ci_high"]
    # an answer without a verdict leaves its prompt out, counted
    judged = judge_both_orders(Judge(lambda a, b: None if "x" in (a, b) else longer(a, b)),
                               prompts[:2], policy[:2], baseline[:2])
    assert judged.scores == [1.0, None]
    assert summarise(judged, policy_lengths=[2, 1], baseline_lengths=[1, 2])["unparsed"] == 1


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = [1.0, 0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0]
    low, high = bootstrap_interval(values, resamples=500, seed=3)
    assert (low, high) == bootstrap_interval(values, resamples=500, seed=3)
    assert low < sum(values) / len(values) < high and 0 <= low and high <= 1
    assert bootstrap_interval([0.5] * 6, resamples=50) == (0.5, 0.5)


def test_length_controlled_win_rate_against_a_hand_fitted_regression():
    """Two groups, gaps +10 and −10 (tanh(±1)), win rates 0.9 and 0.5: the saturated fit gives
    σ(θ₀ ± θ₁ t) = 0.9 / 0.5, so θ₀ = (logit 0.9 + logit 0.5) / 2 = ln(9)/2 and the win rate at
    zero gap is σ(ln 3) = 3/4, against a raw 0.7."""
    scores = [1.0] * 9 + [0.0] + [1.0, 0.0] * 5
    gaps = [10] * 10 + [-10] * 10
    lc = length_controlled(scores, gaps)
    assert lc["lc_win_rate"] == pytest.approx(0.75, abs=1e-9)
    t = math.tanh(1.0)
    assert lc["length_coef"] == pytest.approx((math.log(9) - 0) / (2 * t), abs=1e-9)
    assert sum(scores) / len(scores) == pytest.approx(0.7)
    # on uneven data the fit is the likelihood's maximum: a grid around it does no better
    x = [0.9, -0.3, 0.2, -0.8, 0.5, -0.1, 0.7]
    y = [1.0, 0.5, 1.0, 0.0, 0.5, 1.0, 1.0]
    t0, t1 = logistic_fit([x], y)

    def loglik(a, b):
        total = 0.0
        for xi, yi in zip(x, y):
            p = 1 / (1 + math.exp(-(a + b * xi)))
            total += yi * math.log(p) + (1 - yi) * math.log(1 - p)
        return total

    best = loglik(t0, t1)
    assert all(loglik(t0 + da, t1 + db) <= best + 1e-12
               for da in (-1e-3, 0, 1e-3) for db in (-1e-3, 0, 1e-3))


def test_other_features_are_controlled_for_at_zero_gap_in_all_of_them():
    """Three groups, as (length gap, markdown gap): (0, 0) won 3 of 5, (+8, 0) 9 of 10,
    (0, +4) 1 of 5. Three parameters on three design points fit each group's win rate exactly,
    so the win rate at zero gap in both is group one's 0.6 and each coefficient is its group's
    logit step over tanh(gap/σ); with length alone the (0, +4) group's losses pull the
    intercept down instead."""
    scores = [1.0] * 3 + [0.0] * 2 + [1.0] * 9 + [0.0] + [1.0] + [0.0] * 4
    length = [0] * 5 + [8] * 10 + [0] * 5
    markdown = [0] * 15 + [4] * 5
    lc = length_controlled(scores, length, {"markdown": markdown})
    assert lc["lc_win_rate"] == pytest.approx(0.6, abs=1e-9)

    def standardised(gaps):
        mean = sum(gaps) / len(gaps)
        sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
        return math.tanh(max(gaps) / sd)

    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    assert lc["length_coef"] == pytest.approx((logit(0.9) - logit(0.6)) / standardised(length),
                                              abs=1e-9)
    assert lc["lc_coef/markdown"] == pytest.approx(
        (logit(0.2) - logit(0.6)) / standardised(markdown), abs=1e-9)
    assert length_controlled(scores, length)["lc_win_rate"] < 0.55
    # a feature that never varies changes nothing
    assert length_controlled(scores, length, {"flat": [3.0] * 20})["lc_coef/flat"] == 0.0


def test_separable_data_gets_a_finite_regularised_fit():
    """Every win at a positive gap, every loss at a negative one: without a prior the fit runs
    off (σ(θ₀) anywhere in (0, 1)); with it, the symmetric data give θ₀ = 0, a 1/2 win rate at
    zero gap, as the raw rate."""
    scores = [1.0, 1.0, 0.0, 0.0]
    gaps = [5, 3, -3, -5]
    lc = length_controlled(scores, gaps)
    assert lc["lc_ridge"] == 0.1 and lc["lc_win_rate"] == pytest.approx(0.5, abs=1e-9)
    assert 0 < lc["length_coef"] < 60
    assert length_controlled([1.0] * 9 + [0.0] + [1.0, 0.0] * 5,
                             [10] * 10 + [-10] * 10)["lc_ridge"] == 0.0  # the hand case above


def test_style_features_and_a_users_function():
    from prefalign.eval.style_features import resolve, values

    text = "# Title\n- one\n- **two**\n1. three\n```\ncode\n```"
    assert resolve("markdown")(text) == 7  # header, 3 list items, bold, 2 fences
    assert resolve("lines")(text) == 7 and resolve("words")("a b  c") == 3
    assert resolve("math:fabs")(-2.5) == 2.5  # MODULE:FUNCTION, imported because named
    with pytest.raises(ValueError, match="--lc-feature 'emoji': not one of words, lines"):
        resolve("emoji")
    with pytest.raises(ValueError, match="--lc-feature 'nope_mod:f': cannot import"):
        resolve("nope_mod:f")
    with pytest.raises(ValueError, match="response 1 gave 'x', not a finite number"):
        values(lambda t: t, "echo", [1.0, "x"])
    with pytest.raises(ValueError, match=r"'boom': failed on response 0 \(ZeroDivisionError"):
        values(lambda t: 1 / 0, "boom", ["a"])


def test_cohen_kappa_by_hand():
    # observed 3/4; chance .5·.25 + .25·.5 + .25·.25 = .3125; κ = .4375 / .6875
    assert cohen_kappa([1, 1, 0, -1], [1, 0, 0, -1]) == pytest.approx(0.4375 / 0.6875)
    assert cohen_kappa([1, 0, -1], [1, 0, -1]) == 1.0


def test_eval_judges_through_the_cli_with_a_served_judge(tmp_path, tiny_model_dir,
                                                         monkeypatch):
    from prefalign.cli import main

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "synth"))
    from synth_helpers import ScriptedServer, chat_answer

    def respond(method, path, headers, body):  # prefers the response that holds "good"
        q = json.loads(body)["messages"][-1]["content"]
        a = re.search(r"\[Response A\]\n(.*?)\n\n\[Response B\]", q, re.S).group(1)
        return 200, {"Content-Type": "application/json"}, chat_answer(
            "Verdict: A" if "good" in a else "Verdict: B")

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"q{i}"}) + "\n" for i in range(3)))
    baseline = tmp_path / "b.jsonl"
    baseline.write_text("".join(json.dumps({"response": r}) + "\n"
                                for r in ("good one", "good two", "good three")))
    out = tmp_path / "eval"
    with ScriptedServer(respond) as judge, ScriptedServer(respond) as second:
        code = main(["eval", "--model", str(tiny_model_dir("llama")), "--prompts", str(prompts),
                     "--max-new-tokens", "4", "--output", str(out), "--device", "cpu",
                     "--judge", f"openai:{judge.url}#judge", "--judge",
                     f"openai:{second.url}#judge", "--baseline", str(baseline),
                     "--bootstrap", "50", "--lc-feature", "words", "--lc-feature",
                     "markdown"])
    assert code == 0
    result = json.loads((out / "eval.json").read_text())
    m = result["metrics"]
    # the tiny policy's random text never holds "good": the baseline wins in both orders
    assert m["judged/win_rate"] == 0.0 and m["judged/prompts"] == 3
    assert m["judged/position_bias_rate"] == 0.0 and m["judged/tie_rate"] == 0.0
    assert m["judged2/win_rate"] == 0.0 and m["judged/kappa"] == 1.0
    assert {"judged/lc_coef/words", "judged/lc_coef/markdown"} <= set(m)
    assert m["judged/lc_coef/markdown"] == 0.0  # no response has markdown: the term is flat
    assert result["judged"][0]["judged"] == {"policy_as_a": "b", "policy_as_b": "a",
                                             "score": 0.0}
    assert len(judge.requests) == 6  # 3 prompts, both orders
    with pytest.raises(ValueError, match="--lc-feature 'emoji'"):  # before any model loads
        from prefalign.eval.policy import evaluate_policy

        evaluate_policy("/nowhere", prompts=str(prompts), judge=[Judge(longer)],
                        lc_feature=["emoji"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"answer": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl, line 1: field 'response'"):
        from prefalign.eval.policy import evaluate_policy

        evaluate_policy(tiny_model_dir("llama"), prompts=str(prompts), max_new_tokens=2,
                        judge=[Judge(longer)], baseline=str(bad))


def test_a_baseline_model_samples_with_its_own_tokenizer(tmp_path, tiny_model_dir):
    """A --baseline of another tokenizer (here BPE against the policy's characters):
    its prompts and responses go through its own tokenizer; with the policy's, its ids would
    be read as other tokens."""
    from prefalign.eval.policy import _baseline_texts
    from prefalign.eval.sampling import sample_responses
    from transformers import AutoTokenizer

    baseline = tiny_model_dir("llama", tokenizer="bpe")
    policy_tok = AutoTokenizer.from_pretrained(tiny_model_dir("llama"))
    sampling = dict(max_new_tokens=4, temperature=1.0, top_p=1.0, top_k=0, seed=3,
                    batch_size=4)
    texts = _baseline_texts(str(baseline), ["q0", "q1"], None, policy_tok, sampling,
                            "float32", "cpu", False)
    from prefalign.eval.policy import _load

    own = sample_responses(_load(str(baseline), "float32", "cpu", False),
                           AutoTokenizer.from_pretrained(baseline), ["q0", "q1"],
                           num_samples=1, **sampling)
    assert texts == [t[0] for t in own.texts]
