"""prefalign iterate reuses a finished round only when it was made with the same policy and
settings; otherwise it stops with one line naming what differs."""

import json

import pytest

from prefalign.loop import IterateConfig, run_iterate
from synth_helpers import arithmetic_rows

SCORER = "verifier:synth_helpers:digit_share"


def test_finished_rounds_are_not_reused_after_model_or_objective_changed(tmp_path, write_prompts,
                                                                         tiny_model_dir):
    prompts = write_prompts(arithmetic_rows(4))
    held_out = write_prompts(arithmetic_rows(2, chat=False), "held_out.jsonl")
    out = tmp_path / "run"

    def cfg(**kw):
        base = dict(model=str(tiny_model_dir("llama")), prompts=str(prompts),
                    eval_prompts=str(held_out), output=str(out), rounds=1, scorer=SCORER, n=4,
                    max_new_tokens=8, temperature=1.0, seed=5, progress=False,
                    train_args={"max_steps": 1, "batch_size": 2, "lr": 1e-3})
        base.update(kw)
        return IterateConfig(**base)

    first = run_iterate(cfg())
    assert "fingerprint" not in first.rounds[0]
    with pytest.raises(ValueError, match=r"round-1 was made with other settings \(objective "
                                         r"'sigmoid' -> 'ipo'\).*new --output"):
        run_iterate(cfg(objective="ipo"))
    other = tiny_model_dir("qwen2")
    with pytest.raises(ValueError, match=rf"round-0 was made with other settings \(policy .* -> "
                                         rf"{other} \(other contents\)\)"):
        run_iterate(cfg(model=str(other)))
    with pytest.raises(ValueError, match=r"round-1 was made with other settings \(train_args"):
        run_iterate(cfg(train_args={"max_steps": 1, "batch_size": 2, "lr": 1e-2}))
    # the same settings, one more round: round 1 is reused, round 2 is new
    stamp = (out / "round-1" / "metrics.jsonl").stat().st_mtime_ns
    more = run_iterate(cfg(rounds=2))
    assert [r["round"] for r in more.rounds] == [1, 2] and more.rounds[0] == first.rounds[0]
    assert (out / "round-1" / "metrics.jsonl").stat().st_mtime_ns == stamp
    assert json.loads((out / "round-2" / "round.json").read_text())["fingerprint"]["policy"] == \
        str(out / "round-1" / "model")


def test_an_unfinished_round_resumes_only_from_the_same_start(tmp_path, write_prompts,
                                                              tiny_model_dir):
    """A half-done round's synth log names its policy by path: after an earlier round was
    retrained at that path, resuming would mix samples of two policies."""
    import json as _json

    from synth_helpers import arithmetic_rows

    prompts = write_prompts(arithmetic_rows(2))
    out = tmp_path / "run"
    (out / "round-1").mkdir(parents=True)
    (out / "round-1" / "round.start.json").write_text(_json.dumps(
        {"round": 1, "fingerprint": {"round": 1, "policy": "another", "policy_files": "x"}}))
    with pytest.raises(ValueError, match="round-1 was made with other settings"):
        run_iterate(IterateConfig(model=str(tiny_model_dir("llama")), prompts=str(prompts),
                                  scorer="verifier:synth_helpers:digit_share", rounds=1,
                                  output=str(out), progress=False))
