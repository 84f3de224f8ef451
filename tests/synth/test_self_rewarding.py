"""Self-rewarding scorers: `@policy`/`@ref` in a scorer spec, `selfjudge:` against a hand
computation of the A/B log-probabilities, and `prefalign iterate` scoring each round with that
round's policy."""

import json
import math

import pytest
import torch

from prefalign.data.records import SFTRecord
from prefalign.data.tokenization import tokenize_record
from prefalign.generation.types import PromptItem
from prefalign.loop import IterateConfig, run_iterate
from prefalign.scoring import build_scorer
from prefalign.scoring.model_refs import resolve_model_refs
from prefalign.scoring.self_judge import TEMPLATE
from synth_helpers import CannedGenerator, arithmetic_rows


def test_model_references_are_replaced_or_refused():
    assert resolve_model_refs("implicit:@policy,@ref?beta=0.2", policy="/p", ref="/r") == \
        "implicit:/p,/r?beta=0.2"
    assert resolve_model_refs("0.5*judge:hf:@policy+0.5*verifier:a.b:c", policy="/p",
                              ref=None) == "0.5*judge:hf:/p+0.5*verifier:a.b:c"
    assert resolve_model_refs("rm:/models/@policyless", policy="/p", ref=None) == \
        "rm:/models/@policyless"  # not a whole word: a path, left alone
    with pytest.raises(ValueError, match="@ref names the reference of a prefalign iterate loop"):
        resolve_model_refs("implicit:@policy,@ref", policy="/p", ref=None)


def _answer_logp(model, tok, question: str, answer: str) -> float:
    """log p(answer turn | question turn) with a full, unpacked forward."""
    record = SFTRecord([{"role": "user", "content": question}],
                       [{"role": "assistant", "content": answer}])
    ex, _ = tokenize_record(record, tok)
    ids = torch.tensor([ex.prompt_ids + ex.responses[0]])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits.float(), -1)[0]
    start = len(ex.prompt_ids)
    return sum(float(logp[start + t - 1, i]) for t, i in enumerate(ex.responses[0]))


def test_selfjudge_reads_the_answer_from_the_log_probs_in_both_orders(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = str(tiny_model_dir("llama"))
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    item = PromptItem(0, "2+2=")
    responses = ["4", "5", "22"]

    def p_first(a, b):  # σ(log p("A") − log p("B")) for the question with a shown first
        q = TEMPLATE.format(question="2+2=", a=a, b=b)
        return 1 / (1 + math.exp(-(_answer_logp(model, tok, q, "A") -
                                   _answer_logp(model, tok, q, "B"))))

    expected = []
    for i, ri in enumerate(responses):
        wins = [(p_first(ri, rj) + (1 - p_first(rj, ri))) / 2
                for j, rj in enumerate(responses) if j != i]
        expected.append(sum(wins) / len(wins))
    scorer = build_scorer(f"selfjudge:{path}", device="cpu")
    row = scorer.score([(item, responses)])[0]
    got = [s.value for s in row]
    assert got == pytest.approx(expected, abs=1e-5)
    # each response's p(i ≻ j): what a pair's strength is
    for i, ri in enumerate(responses):
        for j, rj in enumerate(responses):
            if i != j:
                assert row[i].beats[j] == pytest.approx(
                    (p_first(ri, rj) + 1 - p_first(rj, ri)) / 2, abs=1e-5)
                assert row[i].beats[j] + row[j].beats[i] == pytest.approx(1.0)
    assert sum(got) == pytest.approx(len(responses) / 2, abs=1e-6)  # p(i≻j) + p(j≻i) = 1
    assert scorer.stats["comparisons"] == 6
    with pytest.raises(ValueError, match="template needs {b}"):
        build_scorer(f"selfjudge:{path}?template=compare {{question}} {{a}}", device="cpu")


def test_iterate_scores_each_round_with_its_own_policy(tmp_path, write_prompts, tiny_model_dir):
    model = tiny_model_dir("llama")
    prompts = write_prompts(arithmetic_rows(3))
    held_out = write_prompts(arithmetic_rows(2, chat=False), "held_out.jsonl")
    out = tmp_path / "run"
    cfg = IterateConfig(model=str(model), prompts=str(prompts), eval_prompts=str(held_out),
                        output=str(out), rounds=2, scorer="selfjudge:@policy",
                        eval_scorer="implicit:@policy,@ref?beta=1", n=3, max_new_tokens=6,
                        temperature=1.0, seed=1, progress=False,
                        train_args={"max_steps": 1, "batch_size": 2, "lr": 5e-2})
    run_iterate(cfg)
    first = json.loads((out / "round-1" / "data.manifest.json").read_text())
    second = json.loads((out / "round-2" / "data.manifest.json").read_text())
    assert first["scorer"] == f"selfjudge:{model}"  # round 1 judges with the starting policy
    assert first["counts"]["records"] > 0
    assert second["scorer"] == f"selfjudge:{out / 'round-1' / 'model'}"  # round 2 with round 1's
    # the held-out eval: the implicit reward of each policy against the loop's start; the start
    # against itself is 0 everywhere, a trained policy's is not
    start = json.loads((out / "round-0" / "eval.json").read_text())
    trained = json.loads((out / "round-1" / "eval.json").read_text())
    assert start["mean_score"] == pytest.approx(0.0, abs=1e-6)
    assert abs(trained["mean_score"]) > 1e-4
    # an eval scorer that cannot be read is refused before any round runs
    with pytest.raises(ValueError, match="unknown scorer kind 'implicitt'"):
        run_iterate(IterateConfig(model=str(model), prompts=str(prompts), rounds=1,
                                  output=str(tmp_path / "bad"), scorer="selfjudge:@policy",
                                  eval_scorer="implicitt:@policy,@ref"))
    assert not (tmp_path / "bad" / "round-1").exists()


def test_a_reference_inside_a_path_is_left_alone():
    assert resolve_model_refs("rm:/models/x@ref-2/rm", policy="/p", ref="/r") == \
        "rm:/models/x@ref-2/rm"
    assert resolve_model_refs("pairjudge:hf:@policy?rubric=x", policy="/p", ref=None) == \
        "pairjudge:hf:/p?rubric=x"


def test_a_self_judged_pair_carries_the_judges_probability_as_strength(tmp_path, tiny_model_dir):
    from prefalign.synth import SynthConfig, run_synth

    path = str(tiny_model_dir("llama"))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "2+2="}) + "\n")
    result = run_synth(SynthConfig(model="m", prompts=str(prompts), n=3, generator=CannedGenerator([["4", "", "5"]]),
                                   scorer=f"selfjudge:{path}", device="cpu",
                                   output=str(tmp_path / "o.jsonl"), progress=False))
    (pair,) = result.records
    row = build_scorer(f"selfjudge:{path}", device="cpu").score([(PromptItem(0, "2+2="),
                                                                  ["4", "5"])])[0]
    # the empty sample 1 is not shown to the judge: samples 0 and 2 are its positions 0 and 1
    chosen = 0 if pair.chosen == "4" else 1
    assert pair.meta["strength"] == pytest.approx(row[chosen].beats[1 - chosen], abs=1e-6)
    assert pair.meta["strength"] > 0.5
