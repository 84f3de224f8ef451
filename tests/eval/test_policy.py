"""evaluate_policy on tiny offline models: the fast path equals the plain one, identities hold
when policy and reference are one model, sampling is seeded."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from prefalign.data import load_records, tokenize_records
from prefalign.engine.forward import plain_sequence_logps
from prefalign.data import DataError
from prefalign.eval.policy import evaluate_policy, read_prompts


@pytest.fixture
def pairs(tmp_path):
    rows = [{"prompt": f"{i}+{i}=", "chosen": str(2 * i), "rejected": str(2 * i + 3)}
            for i in range(5)]
    rows[0].update(score_chosen=3.0, score_rejected=1.0)
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_log_prob_metrics_match_the_plain_forward(tiny_model_dir, pairs, tmp_path):
    pol, ref = tiny_model_dir("llama"), tiny_model_dir("llama", seed=1)
    res = evaluate_policy(pol, pairs, ref_path=ref, beta=0.2, output=tmp_path / "out")
    assert json.loads((tmp_path / "out" / "eval.json").read_text())["metrics"] == res["metrics"]
    tok = AutoTokenizer.from_pretrained(pol)
    examples, _ = tokenize_records(load_records(pairs)[0], tok)
    with torch.no_grad():
        p = plain_sequence_logps(AutoModelForCausalLM.from_pretrained(pol).eval(), examples).double()
        r = plain_sequence_logps(AutoModelForCausalLM.from_pretrained(ref).eval(), examples).double()
    m = res["metrics"]
    assert m["ranking_accuracy"] == pytest.approx((p[:, 0] > p[:, 1]).double().mean().item())
    assert m["logps/chosen"] == pytest.approx(p[:, 0].mean().item(), abs=1e-4)
    assert m["rewards/margin"] == pytest.approx(
        (0.2 * ((p[:, 0] - r[:, 0]) - (p[:, 1] - r[:, 1]))).mean().item(), abs=1e-4)
    assert m["alignment_gap"] == pytest.approx(
        m["idealized_ranking_accuracy"] - m["ranking_accuracy"])
    assert 0 < m["topk_mass/all"] <= 1 and m["topk_entropy/all"] > 0
    assert res["counts"]["pairs"] == 5


def test_topk_mass_equals_the_full_softmax(tiny_model_dir, pairs):
    pol = tiny_model_dir("llama")
    res = evaluate_policy(pol, pairs, topk=5)
    tok = AutoTokenizer.from_pretrained(pol)
    model = AutoModelForCausalLM.from_pretrained(pol).eval()
    masses = []
    with torch.no_grad():
        for ex in tokenize_records(load_records(pairs)[0], tok)[0]:
            for resp in ex.responses:
                ids = torch.tensor([ex.prompt_ids + resp])
                probs = model(ids).logits[0, len(ex.prompt_ids) - 1:-1].softmax(-1)
                masses.append(probs.topk(5, dim=-1).values.sum(-1))
    assert res["metrics"]["topk_mass/all"] == pytest.approx(torch.cat(masses).mean().item(),
                                                            abs=1e-5)


def test_policy_equal_to_reference_gives_zero_rewards_kl_and_displacement(tiny_model_dir, pairs):
    pol = tiny_model_dir("llama")
    judge = lambda p, a, b: 0
    res = evaluate_policy(pol, pairs, ref_path=pol, prompts=["hi", "1+1="], num_samples=2,
                          max_new_tokens=6, compare=judge)
    m = res["metrics"]
    assert m["rewards/margin"] == pytest.approx(0, abs=1e-6)
    assert m["displacement/chosen_delta"] == pytest.approx(0, abs=1e-6)
    assert m["kl/k1"] == pytest.approx(0, abs=1e-6) and m["kl/samples"] == 4
    assert m["winrate/win_rate"] == 0.5 and m["winrate/tie_rate"] == 1.0
    assert m["reference_ranking_accuracy"] == pytest.approx(m["ranking_accuracy"])
    # the same model: nothing the reference ranks wrong is fixed, nothing right is broken
    assert m["difficulty/fixed"] == 0.0 and m["difficulty/broken"] == 0.0
    hardest = res["hardest_pairs"]
    assert hardest and all(r["reference_margin"] == pytest.approx(r["policy_margin"])
                           for r in hardest)
    assert [r["reference_margin"] for r in hardest] == sorted(r["reference_margin"]
                                                              for r in hardest)
    assert len(res["lengths"]["policy"]) == 4 and max(res["lengths"]["policy"]) <= 6


def test_sampling_is_seeded(tiny_model_dir, tmp_path):
    pol = tiny_model_dir("llama")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n{"prompt": [{"role": "user", "content": "yo"}]}\n')
    a = evaluate_policy(pol, prompts=prompts, max_new_tokens=5, seed=3)
    b = evaluate_policy(pol, prompts=prompts, max_new_tokens=5, seed=3)
    c = evaluate_policy(pol, prompts=prompts, max_new_tokens=5, seed=4)
    assert a["samples"] == b["samples"] and a["samples"] != c["samples"]
    assert "kl/k1" not in a["metrics"]   # no reference, no KL


def test_read_prompts_formats_and_errors(tmp_path):
    (tmp_path / "p.txt").write_text("one\n\ntwo\n")
    assert read_prompts(tmp_path / "p.txt") == ["one", "two"]
    (tmp_path / "p.json").write_text('["a", {"prompt": "b"}]')
    assert read_prompts(tmp_path / "p.json") == ["a", "b"]
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a"}\n{"text": "b"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2, field 'prompt': missing"):
        read_prompts(tmp_path / "bad.jsonl")


@pytest.mark.parametrize("row, problem", [
    ({"prompt": "   "}, "line 2, field 'prompt': only whitespace; every row needs a prompt"),
    ({"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
     "line 2, field 'prompt': the prompt ends with an assistant message"),
    ({"prompt": [{"role": "robot", "content": "q"}]},
     "line 2, field 'prompt': message 1 has unknown role 'robot'"),
    ({"prompt": "q", "system": ""}, "line 2, field 'system': empty string"),
    ({"prompt": 5}, "line 2, field 'prompt': expected a string or a list of chat messages"),
])
def test_eval_prompts_are_checked_as_training_data_is(tmp_path, row, problem):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": "fine"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError) as err:
        read_prompts(path)
    assert str(err.value).startswith(f"{path}, {problem}")


def test_eval_prompts_keep_their_system_and_name_bad_files(tmp_path):
    path = tmp_path / "prompts.jsonl"
    chat = [{"role": "user", "content": "q"}]
    path.write_text(json.dumps({"prompt": "q", "system": "be brief"}) + "\n"
                    + json.dumps({"prompt": chat, "system": "be brief"}) + "\n" + '"plain"\n')
    assert read_prompts(path) == ["be brief\n\nq", [{"role": "system", "content": "be brief"},
                                                    *chat], "plain"]
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"prompt": "q", "id": 1}, indent=2))
    with pytest.raises(DataError, match="one.json: holds one JSON object over several lines"):
        read_prompts(one)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_prompts(tmp_path / "missing.jsonl")
    assert read_prompts(["a", chat]) == ["a", chat]  # in memory: the prompts themselves
    with pytest.raises(DataError, match=r"<rows>, row 1 \(0-based\), field 'prompt': empty"):
        read_prompts(["a", ""])


def test_eval_cli_parser_maps_flags(tiny_model_dir, pairs, tmp_path):
    import argparse

    from prefalign.cli.evaluate import add_eval_parser

    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "--model", str(tiny_model_dir("llama")), "--data",
                              str(pairs), "--output", str(tmp_path / "o"), "--beta", "0.3"])
    assert args.func(args) == 0
    assert json.loads((tmp_path / "o" / "eval.json").read_text())["beta"] == 0.3


def test_samples_do_not_depend_on_the_batch_size(tiny_model_dir):
    """One seed per (prompt, sample): batching changes nothing; stopped responses keep EOS."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefalign.eval.sampling import sample_responses

    path = tiny_model_dir("llama")
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    prompts = ["1+1=", "hello", [{"role": "user", "content": "yo"}], "12+30="]
    runs = [sample_responses(model, tok, prompts, num_samples=3, max_new_tokens=6, seed=5,
                             batch_size=size) for size in (1, 5, 64)]
    assert runs[0].responses == runs[1].responses == runs[2].responses
    assert runs[0].texts == runs[2].texts
    flat = [r for rs in runs[0].responses for r in rs]
    assert len(flat) == 12 and all(0 < len(r) <= 6 for r in flat)
    eos = tok.eos_token_id
    assert all(r[-1] == eos or len(r) == 6 for r in flat) and all(eos not in r[:-1] for r in flat)


def test_eval_prompts_come_from_the_data_layers_one_reader(tmp_path):
    """CSV, Parquet and saved datasets folders (with a split), another prompt field and a limit:
    the same reader as synth's prompts, with errors naming the file, the line and the field."""
    import datasets

    from prefalign.data.prompts import read_prompt_rows

    csv = tmp_path / "p.csv"
    csv.write_text('prompt,system,id\nhello,,1\nhi,be brief,2\n"",,3\n')
    with pytest.raises(DataError, match=r"p.csv, line 4, field 'prompt': empty string"):
        read_prompts(csv)
    assert read_prompts(csv, limit=2) == ["hello", "be brief\n\nhi"]
    assert [r.prompt for r in read_prompt_rows(csv, limit=2)] == ["hello", "hi"]
    rows = [{"question": "a"}, {"question": "b"}]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_prompts(tmp_path / "q.jsonl", field="question") == ["a", "b"]
    with pytest.raises(DataError, match=r"q.jsonl, line 1, field 'prompt': missing"):
        read_prompts(tmp_path / "q.jsonl")
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "q.parquet"))
    assert read_prompts(tmp_path / "q.parquet", field="question", limit=1) == ["a"]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows),
                          "test": datasets.Dataset.from_list([{"question": "c"}])}
                         ).save_to_disk(str(tmp_path / "saved"))
    assert read_prompts(tmp_path / "saved", field="question", split="test") == ["c"]
    with pytest.raises(DataError, match="splits"):
        read_prompts(tmp_path / "saved", field="question")


def test_kl_is_sampled_from_the_policy_itself_whatever_the_eval_temperature(tiny_model_dir):
    """With --temperature 0.5 the KL came from tempered samples (5.25 for an exact 2.60 in an
    audit): now from a draw at temperature 1, the same as an eval at temperature 1."""
    pol, ref = tiny_model_dir("llama"), tiny_model_dir("llama", seed=1)
    common = dict(ref_path=ref, prompts=["hi", "1+1="], num_samples=3, max_new_tokens=6, seed=2)
    plain = evaluate_policy(pol, temperature=1.0, **common)
    for how in (dict(temperature=0.5), dict(temperature=0.0), dict(top_p=0.5)):
        other = evaluate_policy(pol, **how, **common)
        assert other["metrics"]["kl/k1"] == pytest.approx(plain["metrics"]["kl/k1"], rel=1e-6), how
        assert other["metrics"]["kl/k3"] == pytest.approx(plain["metrics"]["kl/k3"], rel=1e-6), how
        assert "temperature 1" in other["kl_sampling"]
    assert "kl_sampling" not in plain
    assert plain["metrics"]["kl/k3"] > 0
