"""Juries (several scorers vote; agreement is the pair's strength), judges with principles
(a constitution in the rubric, a per-principle breakdown), and the strength filter."""

import json

import pytest

from prefalign.generation.types import PromptItem
from prefalign.scoring import build_scorer
from prefalign.scoring.judge import PointwiseJudge, read_principles
from prefalign.synth import SynthConfig, run_synth
from prefalign.synth.filters import apply_filters, parse_filter
from prefalign.synth.pairs import PairOptions, agreement, build_records
from synth_helpers import CannedGenerator, ScriptedJudge

JURY = ("jury:verifier:helpers_jury:length|verifier:helpers_jury:vowels|"
        "verifier:helpers_jury:is_yes")


def test_a_jury_scores_by_rank_and_keeps_each_members_votes():
    item = PromptItem(0, "q", meta={})
    responses = ["yes", "aaaa", "b"]
    row = build_scorer(JURY).score([(item, responses)])[0]
    # length: yes 3, aaaa 4, b 1 -> beats 1/2, 2/2, 0/2; vowels 1, 4, 0 -> 1/2, 1, 0;
    # is_yes 1, 0, 0 -> 1, 1/4 (one loss, one tie), 1/4
    assert [s.votes for s in row] == [(3.0, 1.0, 1.0), (4.0, 4.0, 0.0), (1.0, 0.0, 0.0)]
    assert [s.value for s in row] == pytest.approx([(0.5 + 0.5 + 1) / 3, (1 + 1 + 0.25) / 3,
                                                    (0 + 0 + 0.25) / 3])


def test_a_pair_gets_its_jurys_agreement_as_strength():
    assert agreement([3, 1, 1], [4, 4, 0]) == pytest.approx(1 / 3)
    assert agreement([2, 2], [2, 1]) == pytest.approx(0.75)  # a tie counts half
    item = PromptItem(0, "q")
    votes = [[3.0, 1.0, 1.0], [4.0, 4.0, 0.0], [1.0, 0.0, 0.0]]
    scores = [0.667, 0.75, 0.083]
    recs, _ = build_records(item, ["yes", "aaaa", "b"], scores, PairOptions("west-of-n"),
                            votes=votes)
    (pair,) = recs
    assert (pair.chosen, pair.rejected) == ("aaaa", "b")
    assert pair.meta["chosen_votes"] == [4.0, 4.0, 0.0]
    assert pair.meta["strength"] == pytest.approx((1 + 1 + 0.5) / 3)


def test_synth_with_a_jury_writes_strength_and_the_filter_drops_split_verdicts(tmp_path,
                                                                             monkeypatch):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"q{i}"}) + "\n" for i in range(2)))
    table = [["yes", "aaaa", "b"], ["eeee", "zz", "y"]]
    cfg = dict(model="m", prompts=str(prompts), scorer=JURY, n=3, generator=CannedGenerator(table),
               output=str(tmp_path / "out.jsonl"), progress=False)
    run_synth(SynthConfig(**cfg))
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["strength"] for r in rows] == pytest.approx([2.5 / 3, 2.5 / 3])
    # votes are in the log, so another filter only rebuilds the output
    run_synth(SynthConfig(**cfg, filters=["strength:0.9"]))
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["counts"]["filters"][0]["dropped"] == {"weak_preference": 2}
    assert manifest["counts"]["generated_this_run"] == 0
    with pytest.raises(ValueError, match="record 1 has no strength"):
        apply_filters([__import__("prefalign.data.records", fromlist=["PairRecord"])
                       .PairRecord("p", "a", "b")], [parse_filter("strength")])


def rate(q):
    """A judge that rates by principle: 9 under 'be brief' when the response is short, 2
    otherwise; 8 under 'be polite' when it says please."""
    response = q.split("[Response]\n")[1].split("\n\n")[0]
    if "1. Be brief" in q and "2." not in q:
        return f"Rating: {9 if len(response) < 6 else 2}"
    if "1. Be polite" in q and "2." not in q:
        return f"Rating: {8 if 'please' in response else 3}"
    return "Rating: 5"


def test_principles_go_into_the_rubric_and_per_principle_ratings_are_votes(tmp_path):
    path = tmp_path / "constitution.txt"
    path.write_text("# our principles\nBe brief\n\nBe polite\n")
    principles = read_principles(str(path))
    assert principles == ["Be brief", "Be polite"]
    gen = ScriptedJudge(rate)
    judge = PointwiseJudge(gen, principles=principles, principles_file=str(path))
    judge.score([(PromptItem(0, "q"), ["ok"])])
    assert "Judge by these principles:\n1. Be brief\n2. Be polite" in gen.questions[0]
    assert judge.describe()["principles"] == principles
    per = PointwiseJudge(ScriptedJudge(rate), principles=principles, per_principle=True)
    row = per.score([(PromptItem(0, "q"), ["ok", "please do it now"])])[0]
    assert [s.votes for s in row] == [(9, 3), (2, 8)]
    assert [s.value for s in row] == [6.0, 5.0]
    with pytest.raises(ValueError, match="per_principle needs principles"):
        PointwiseJudge(ScriptedJudge(rate), per_principle=True)
    with pytest.raises(ValueError, match="no principle in it"):
        (tmp_path / "empty.txt").write_text("# nothing\n")
        read_principles(str(tmp_path / "empty.txt"))


def test_a_jurys_members_are_read_with_the_spec_and_principle_switches_are_booleans(tmp_path):
    from prefalign.scoring import parse_scorer_spec
    from prefalign.scoring.judge import _build_pointwise

    with pytest.raises(ValueError, match="unknown scorer kind 'rmm'"):
        parse_scorer_spec("jury:rm:/a|rmm:/b?x=1")  # before any model would load
    path = tmp_path / "p.txt"
    path.write_text("Be brief\n")
    import prefalign.generation as generation

    made = {}
    monkey = generation.make_generator
    try:
        generation.make_generator = lambda spec: made.setdefault("g", ScriptedJudge(rate))
        judge = _build_pointwise("x", {"principles": str(path), "per_principle": "false"}, None)
        assert judge.per_principle is False  # "false" was read as true
        with pytest.raises(ValueError, match="per_principle must be true or false"):
            _build_pointwise("x", {"per_principle": "maybe"}, None)
    finally:
        generation.make_generator = monkey


def test_a_missing_principles_file_is_refused_before_any_work(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "q"}) + "\n")
    with pytest.raises(ValueError, match="nope.txt: no such file"):
        run_synth(SynthConfig(model=str(tmp_path / "no-model"), prompts=str(prompts),
                              scorer=f"judge:hf:/m?principles={tmp_path / 'nope.txt'}",
                              output=str(tmp_path / "o.jsonl"), progress=False))
    assert not (tmp_path / "o.jsonl.progress.jsonl").exists()
