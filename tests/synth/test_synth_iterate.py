"""prefalign iterate: two rounds of synth -> train -> eval on a tiny model, then a rerun that
skips both finished rounds."""

import json

from prefalign.loop import IterateConfig, run_iterate
from synth_helpers import arithmetic_rows

SCORER = "verifier:synth_helpers:digit_share"


def test_two_rounds_sample_from_the_newest_policy_and_resume_per_round(tmp_path, write_prompts,
                                                                       tiny_model_dir):
    model = tiny_model_dir("llama")
    prompts = write_prompts(arithmetic_rows(4))
    held_out = write_prompts(arithmetic_rows(2, chat=False), "held_out.jsonl")
    out = tmp_path / "run"
    cfg = IterateConfig(model=str(model), prompts=str(prompts), eval_prompts=str(held_out),
                        output=str(out), rounds=2, scorer=SCORER, n=4, max_new_tokens=8,
                        temperature=1.0, seed=5, progress=False,
                        train_args={"max_steps": 1, "batch_size": 2, "lr": 1e-3})
    result = run_iterate(cfg)
    assert [r["round"] for r in result.rounds] == [1, 2]
    assert result.policy == out / "round-2" / "model"
    for k in (1, 2):
        rdir = out / f"round-{k}"
        for name in ("data.jsonl", "data.manifest.json", "metrics.jsonl", "eval.json",
                     "round.json", "model/config.json"):
            assert (rdir / name).exists(), f"round-{k}/{name}"
        info = json.loads((rdir / "round.json").read_text())
        assert info["trained"] and info["train_steps"] == 1 and info["records"] > 0
        ev = json.loads((rdir / "eval.json").read_text())
        assert ev["prompts"] == 2 and ev["responses"] == 2 and 0 <= ev["mean_score"] <= 1
        assert ev["policy"] == str(rdir / "model")
    round2 = json.loads((out / "round-2" / "data.manifest.json").read_text())
    assert round2["model"] == str(out / "round-1" / "model"), "round 2 samples the new policy"
    assert round2["seed"] == 7
    assert json.loads((out / "round-0" / "eval.json").read_text())["policy"] == str(model)

    stamps = {k: (out / f"round-{k}" / "metrics.jsonl").stat().st_mtime_ns for k in (1, 2)}
    again = run_iterate(cfg)
    assert again.policy == result.policy and again.rounds == result.rounds
    assert stamps == {k: (out / f"round-{k}" / "metrics.jsonl").stat().st_mtime_ns for k in (1, 2)}
