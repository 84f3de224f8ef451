"""`margin` and `ref-guided`: the pairs' log-probs against a plain transformers forward, the
implicit reward margin and the reference log-ratio by hand, and which pairs each keeps."""

import math

import pytest
import torch

from prefalign.data.records import PairRecord
from prefalign.data.tokenization import tokenize_record
from prefalign.synth.filters import apply_filters, parse_filter


def _plain_logps(model_dir, record):
    """log p(chosen | prompt), log p(rejected | prompt) with a full, unpacked forward."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ex, _ = tokenize_record(record, tok)
    out = []
    for response in ex.responses:
        ids = torch.tensor([ex.prompt_ids + response])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits.float(), -1)[0]
        start = len(ex.prompt_ids)
        out.append(sum(float(logp[start + t - 1, tok_id]) for t, tok_id in enumerate(response)))
    return out, [len(r) for r in ex.responses]


RECORDS = [PairRecord("1+1=", "2", "3"), PairRecord("2+2=", "4", "44"),
           PairRecord("3+3=", "6", "9"), PairRecord("4+4=", "8", "7 and 8")]


def _copies():
    return [PairRecord(r.prompt, r.chosen, r.rejected) for r in RECORDS]


def test_margin_keeps_the_smallest_implicit_reward_margins(tiny_model_dir):
    policy, ref = str(tiny_model_dir("llama", seed=1)), str(tiny_model_dir("llama"))
    beta = 0.5
    expected = []
    for r in RECORDS:
        (pw, pl), _ = _plain_logps(policy, r)
        (rw, rl), _ = _plain_logps(ref, r)
        expected.append(beta * ((pw - rw) - (pl - rl)))
    spec = parse_filter(f"margin:model={policy},ref_model={ref},beta={beta},fraction=0.5,"
                        "device=cpu")
    kept, report = apply_filters(_copies(), [spec])
    smallest = sorted(range(4), key=lambda i: expected[i])[:2]
    assert [r.prompt for r in kept] == [RECORDS[i].prompt for i in sorted(smallest)]
    for r in kept:
        i = [x.prompt for x in RECORDS].index(r.prompt)
        assert r.meta["implicit_margin"] == pytest.approx(expected[i], abs=1e-4)
    assert report[0]["dropped"] == {"larger_margin": 2}
    # keep=largest, 0.3 of 4 rounds up to 2... of the other end
    kept, report = apply_filters(_copies(), [parse_filter(
        f"margin:model={policy},ref_model={ref},beta={beta},fraction=0.3,keep=largest,"
        "device=cpu")])
    largest = sorted(range(4), key=lambda i: -expected[i])[:2]
    assert [r.prompt for r in kept] == [RECORDS[i].prompt for i in sorted(largest)]
    assert report[0]["dropped"] == {"smaller_margin": 2}


def test_ref_guided_keeps_pairs_the_reference_prefers(tiny_model_dir):
    ref = str(tiny_model_dir("llama"))
    sums, means = [], []
    for r in RECORDS:
        (w, l), (nw, nl) = _plain_logps(ref, r)
        sums.append(w - l)
        means.append(w / nw - l / nl)
    threshold = sorted(sums)[1]  # keeps the three largest (>=), drops the smallest
    kept, report = apply_filters(_copies(), [parse_filter(
        f"ref-guided:ref_model={ref},threshold={threshold!r},device=cpu")])
    assert [r.prompt for r in kept] == [r.prompt for r, s in zip(RECORDS, sums)
                                        if s >= threshold - 1e-6]
    assert report[0]["dropped"] == {"reference_disagrees": 4 - len(kept)}
    for r in kept:
        i = [x.prompt for x in RECORDS].index(r.prompt)
        assert r.meta["reference_logratio"] == pytest.approx(sums[i], abs=1e-4)
    kept, _ = apply_filters(_copies(), [parse_filter(
        f"ref-guided:ref_model={ref},per_token=true,threshold=-1000,device=cpu")])
    assert [r.meta["reference_logratio"] for r in kept] == pytest.approx(means, abs=1e-4)


def test_model_filters_need_their_models_named_before_any_work():
    with pytest.raises(ValueError, match=r"filter margin: give model=\.\.\., ref_model=\.\.\. "
                                         r"\(required\)"):
        parse_filter("margin:fraction=0.5")
    with pytest.raises(ValueError, match="filter ref-guided: give ref_model=..."):
        parse_filter("ref-guided")
    assert not math.isnan(parse_filter("ref-guided:ref_model=/m").options["threshold"])


def test_ches_score_by_hand():
    from prefalign.scoring.pair_signals import ches_score

    # <(1, 2), (3, 0)> - |(3, 0)|^2 = 3 - 9
    assert ches_score(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.0])) == pytest.approx(-6.0)
    same = torch.tensor([0.5, -1.0])
    assert ches_score(same, same) == pytest.approx(0.0)  # identical embeddings: 0, the most alike


def test_ches_drops_the_most_similar_pairs_with_the_papers_score(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = str(tiny_model_dir("llama"))
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    expected = []
    for r in RECORDS:  # the mean last hidden state over the positions predicting each response
        ex, _ = tokenize_record(r, tok)
        means = []
        for resp in ex.responses:
            with torch.no_grad():
                out = model(torch.tensor([ex.prompt_ids + resp]), output_hidden_states=True)
            h = out.hidden_states[-1][0]
            start = len(ex.prompt_ids) - 1
            means.append(h[start:start + len(resp)].double().mean(0))
        expected.append(float(means[0] @ means[1] - means[1] @ means[1]))
    kept, report = apply_filters(_copies(), [parse_filter(f"ches:model={path},fraction=0.5,"
                                                          "device=cpu")])
    most = sorted(range(4), key=lambda i: -expected[i])[:2]
    assert [r.prompt for r in kept] == [RECORDS[i].prompt for i in range(4) if i not in most]
    for r in kept:
        i = [x.prompt for x in RECORDS].index(r.prompt)
        assert r.meta["ches"] == pytest.approx(expected[i], rel=1e-4, abs=1e-5)
    assert report[0]["dropped"] == {"similar_hidden_embeddings": 2}
