"""--revise: a model critiques and rewrites each prompt's lowest-scored response; the revision
against the original is a pair when it scores higher; all of it logged and resumable."""

import json

from prefalign.synth import SynthConfig, run_synth
from synth_helpers import CannedGenerator, ScriptedJudge


def revise(q):
    """Critiques with a fixed line; revises by doubling the response (the length verifier then
    scores it higher), except for the response "keep", which it returns as it is."""
    if "[Critique]" not in q:
        return "too short"
    response = q.split("[Response]\n")[1].split("\n\n")[0]
    return response if response == "keep" else response * 2


def test_revisions_become_pairs_and_are_logged(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"q{i}"}) + "\n" for i in range(2)))
    table = [["abc", "a"], ["keep", "longer one"]]
    reviser = ScriptedJudge(revise)
    cfg = dict(model="m", prompts=str(prompts), scorer="verifier:helpers_jury:length", n=2,
               generator=CannedGenerator(table), reviser_obj=reviser, output=str(tmp_path / "o.jsonl"),
               progress=False)
    result = run_synth(SynthConfig(**cfg))
    # prompt 0: "a" (the lowest) revised to "aa" (2 > 1): a pair; prompt 1: "keep" stays
    revisions = [r for r in result.records if r.meta.get("revision")]
    assert [(r.chosen, r.rejected, r.meta["critique"], r.meta["revision_of"], r.margin)
            for r in revisions] == [("aa", "a", "too short", 1, 1.0)]
    assert result.counts["revision_pairs"] == 1
    assert result.counts["dropped"]["revision_not_better"] == 1
    assert len(result.records) == 3  # the two west-of-n pairs and the revision
    assert any("[Critique]\ntoo short" in q for q in reviser.questions)
    log = [json.loads(x) for x in (tmp_path / "o.jsonl.progress.jsonl").read_text()
           .splitlines()][1:]
    assert log[0]["revision"] == {"of": 1, "critique": "too short", "text": "aa", "score": 2.0,
                                  "reason": None}
    # a rerun resumes from the log: nothing is asked again
    again = ScriptedJudge(revise)
    run_synth(SynthConfig(**{**cfg, "reviser_obj": again}))
    assert again.questions == []


def test_a_reviser_naming_a_policy_synth_lacks_is_refused_before_any_work(tmp_path):
    import pytest

    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "q"}) + "\n")
    with pytest.raises(ValueError, match="--revise 'hf:@policy'"):
        run_synth(SynthConfig(pool=["1*/nowhere"], prompts=str(prompts),
                              scorer="verifier:helpers_jury:length", revise="hf:@policy",
                              output=str(tmp_path / "o.jsonl"), progress=False))
    assert not (tmp_path / "o.jsonl.progress.jsonl").exists()


def test_another_model_writes_the_critique_the_reviser_revises_by(tmp_path, monkeypatch):
    from pathlib import Path

    import pytest

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "q0"}) + "\n")
    reviser, critic = ScriptedJudge(revise), ScriptedJudge(lambda q: "the critic: too short")
    cfg = dict(model="m", prompts=str(prompts), scorer="verifier:helpers_jury:length", n=2,
               generator=CannedGenerator([["abc", "a"]]), reviser_obj=reviser,
               critic_obj=critic, output=str(tmp_path / "o.jsonl"), progress=False)
    result = run_synth(SynthConfig(**cfg))
    [revision] = [r for r in result.records if r.meta.get("revision")]
    assert revision.meta["critique"] == "the critic: too short"
    assert len(critic.questions) == 1 and "[Critique]" not in critic.questions[0]
    # the reviser was asked only to revise, by the critic's critique
    assert [("[Critique]\nthe critic: too short" in q) for q in reviser.questions] == [True]
    with pytest.raises(ValueError, match="give --revise too"):
        run_synth(SynthConfig(**{**cfg, "reviser_obj": None, "critic": "hf:/m",
                                 "critic_obj": None, "output": str(tmp_path / "b.jsonl")}))
