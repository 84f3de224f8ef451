"""Candidate pools: samples from several models with their source, per-model counts, and pairs
across them (best-of-pool vs worst-of-pool; strong vs weak)."""

import json

import pytest

from prefalign.cli import main
from prefalign.generation.pool import parse_member, parse_pool
from prefalign.generation.types import PromptItem
from prefalign.synth.pairs import PairOptions, build_records
from synth_helpers import arithmetic_rows


def test_pool_members_are_read_with_names_and_counts():
    assert parse_member("big=4*hf:/models/a") == parse_member("big=4*hf:/models/a")
    m = parse_member("4*vllm:/m")
    assert (m.name, m.count, m.spec) == ("vllm:/m", 4, "vllm:/m")
    assert parse_member("/models/x").count == 1
    with pytest.raises(ValueError, match="the name 'a' is given twice"):
        parse_pool(["a=1*/x", "a=2*/y"])


def test_strong_vs_weak_pairs_across_members():
    item = PromptItem(0, "p")
    texts = ["s1", "s2", "w1", "w2"]
    sources = ["big", "big", "small", "small"]
    recs, dropped = build_records(item, texts, [0.9, 0.5, 0.6, 0.1],
                                  PairOptions("strong-vs-weak:strong=big,weak=small"),
                                  sources=sources)
    assert [(r.chosen, r.rejected, r.meta["chosen_model"], r.meta["rejected_model"])
            for r in recs] == [("s1", "w1", "big", "small")]
    recs, _ = build_records(item, texts, [0.9, 0.5, 0.6, 0.1],
                            PairOptions("strong-vs-weak:strong=big,weak=small,rejected=worst"),
                            sources=sources)
    assert recs[0].rejected == "w2"
    recs, dropped = build_records(item, texts, [0.5, 0.4, 0.9, 0.1],
                                  PairOptions("strong-vs-weak:strong=big,weak=small"),
                                  sources=sources)
    assert recs == [] and dropped["weak_not_worse"] == 1
    with pytest.raises(ValueError, match="give strong=..., weak=... .required."):
        PairOptions("strong-vs-weak")


def test_synth_samples_from_a_pool_through_the_cli(tmp_path, write_prompts, tiny_model_dir,
                                                   capsys):
    big, small = tiny_model_dir("llama"), tiny_model_dir("llama", seed=1)
    prompts = write_prompts(arithmetic_rows(3))
    out = tmp_path / "pairs.jsonl"
    common = ["synth", "--prompts", str(prompts), "--output", str(out),
              "--scorer", "verifier:synth_helpers:digit_share", "--max-new-tokens", "6",
              "--temperature", "1.0", "--device", "cpu", "--no-progress",
              "--pool", f"big=2*hf:{big}", "--pool", f"small=1*{small}"]
    assert main(common) == 0
    log = [json.loads(x) for x in (tmp_path / "pairs.jsonl.progress.jsonl").read_text()
           .splitlines()][1:]
    assert all([c["model"] for c in e["completions"]] == ["big", "big", "small"] for e in log)
    manifest = json.loads((tmp_path / "pairs.manifest.json").read_text())
    assert manifest["n"] == 3 and manifest["counts"]["samples_per_model"] == {"big": 6,
                                                                              "small": 3}
    assert [m["name"] for m in manifest["backend"]["members"]] == ["big", "small"]
    for row in (json.loads(x) for x in out.read_text().splitlines()):
        assert row["chosen_model"] in ("big", "small") and "sampled_token_ids" not in row
    assert main(common + ["--n", "4"]) == 2
    assert "the pool samples 3 responses per prompt" in capsys.readouterr().err
    assert main(common + ["--model", str(big)]) == 2
    assert "give --model or --pool, not both" in capsys.readouterr().err


def test_iterate_samples_each_round_from_a_pool_with_its_policy(tmp_path, write_prompts,
                                                                tiny_model_dir):
    from prefalign.loop import IterateConfig, run_iterate

    start, other = tiny_model_dir("llama"), tiny_model_dir("llama", seed=1)
    prompts = write_prompts(arithmetic_rows(3))
    out = tmp_path / "run"
    cfg = dict(model=str(start), prompts=str(prompts), output=str(out), rounds=2,
               scorer="verifier:synth_helpers:digit_share", max_new_tokens=6, temperature=1.0,
               seed=1, progress=False, pool=["policy=2*@policy", f"other=1*{other}"],
               train_args={"max_steps": 1, "batch_size": 2, "lr": 5e-2})
    result = run_iterate(IterateConfig(**cfg))
    for k, policy in ((1, start), (2, out / "round-1" / "model")):
        manifest = json.loads((out / f"round-{k}" / "data.manifest.json").read_text())
        members = manifest["backend"]["members"]
        assert [(m["name"], m["count"], m["model"]) for m in members] == [
            ("policy", 2, str(policy)), ("other", 1, str(other))]  # round k: round k-1's policy
        assert manifest["counts"]["samples_per_model"] == {"policy": 6, "other": 3}
    assert result.rounds[0]["trained"]
    # a rerun with another pool is a round made with other settings
    with pytest.raises(ValueError, match="pool"):
        run_iterate(IterateConfig(**{**cfg, "pool": ["policy=3*@policy", f"other=1*{other}"]}))
    # a pool without the round's policy, or an --n that is not its sum, is refused first
    with pytest.raises(ValueError, match="no member samples from the round's policy"):
        run_iterate(IterateConfig(**{**cfg, "output": str(tmp_path / "b"),
                                     "pool": [f"other=1*{other}"]}))
    bad = IterateConfig(**{**cfg, "output": str(tmp_path / "c"), "n": 5})
    bad.origins = {"n": "--n"}
    with pytest.raises(ValueError, match="the pool samples 3 responses"):
        run_iterate(bad)
    assert not (tmp_path / "b").exists() and not (tmp_path / "c" / "round-1").exists()
