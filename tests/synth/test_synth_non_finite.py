"""A NaN or infinite score is no score: counted, left out of pairs, never a response vs itself."""

import json
import math

import pytest

from synth_helpers import CannedGenerator, arithmetic_rows
from prefalign.generation.types import PromptItem
from prefalign.scoring.base import Score
from prefalign.synth import SynthConfig, run_synth
from prefalign.synth.pairs import PairOptions, build_records


SCORES = {"a": float("nan"), "b": float("inf"), "c": float("-inf"), "d": 1.0, "e": 0.0}


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_verifier_returning_non_finite_gives_no_self_pairs(tmp_path, write_prompts, monkeypatch,
                                                           bad):
    (tmp_path / "myscore_nf.py").write_text(
        f"def bad(response, row):\n    return float({bad!r})\n"
        "SCORES = {'a': float('nan'), 'b': float('inf'), 'd': 1.0, 'e': 0.0}\n"
        "def mixed(response, row):\n    return SCORES[response]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    prompts = write_prompts(arithmetic_rows(2, chat=False))
    out = tmp_path / "s.jsonl"
    result = run_synth(SynthConfig(prompts=str(prompts), output=str(out),
                                   scorer="verifier:myscore_nf:bad", n=2,
                                   generator=CannedGenerator([["x", "y"], ["z", "w"]]), progress=False))
    c = result.counts
    assert result.records == [] and c["records"] == 0
    assert c["scored"] == 0 and c["unscored"] == 4 and c["non_finite"] == 4
    manifest = json.loads((tmp_path / "s.manifest.json").read_text())
    assert manifest["counts"]["non_finite"] == 4
    assert out.read_text() == ""

    # finite scores beside non-finite ones still pair, and only with each other
    out2 = tmp_path / "m.jsonl"
    result = run_synth(SynthConfig(prompts=str(prompts), output=str(out2),
                                   scorer="verifier:myscore_nf:mixed", n=4,
                                   generator=CannedGenerator([["a", "b", "d", "e"]] * 2), progress=False))
    assert result.counts["non_finite"] == 4 and result.counts["scored"] == 4
    for line in out2.read_text().splitlines():
        rec = json.loads(line)  # strict JSON: no NaN/Infinity
        assert (rec["chosen"], rec["rejected"]) == ("d", "e") and rec["margin"] == 1.0


def test_build_records_drops_non_finite_and_never_pairs_a_response_with_itself():
    item = PromptItem(0, "p")
    for strategy in ("west-of-n", "best-vs-second", "best-vs-random", "sweet-spot", "all-pairs",
                     "ranked", "unpaired"):
        records, dropped = build_records(item, ["a", "b", "c"],
                                         [float("nan"), float("nan"), float("inf")],
                                         PairOptions(strategy))
        assert records == [] and dropped["non_finite"] == 3, strategy
        records, dropped = build_records(item, ["a", "b", "c"], [float("nan"), 2.0, 1.0],
                                         PairOptions(strategy))
        assert dropped["non_finite"] == 1
        for r in records:
            meta = r.meta
            if "chosen_index" in meta:
                assert meta["chosen_index"] != meta["rejected_index"]
                assert math.isfinite(r.margin)


def test_score_with_non_finite_value_is_unscored():
    s = Score(float("nan"), "why")
    assert s.value is None and s.reason.startswith("non_finite") and "why" in s.reason
    assert Score(2.0).value == 2.0 and Score(None).value is None


def test_output_that_is_the_prompts_file_is_refused_before_any_work(tmp_path, write_prompts,
                                                                     monkeypatch):
    prompts = write_prompts(arithmetic_rows(2, chat=False))
    before = prompts.read_bytes()

    class Boom(CannedGenerator):
        def generate(self, *a, **k):
            raise AssertionError("generated")

    monkeypatch.chdir(prompts.parent)
    for output in (str(prompts), prompts.name, f"./{prompts.name}",
                   str(prompts.parent / ".." / prompts.parent.name / prompts.name)):
        with pytest.raises(ValueError, match="is the prompts file"):
            run_synth(SynthConfig(prompts=str(prompts), output=output,
                                  scorer="verifier:prefalign.synth.checks:answer_closeness",
                                  n=2, generator=Boom([]), progress=False))
        assert prompts.read_bytes() == before
