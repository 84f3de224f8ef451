"""DSTC: tests the model writes itself (`selftests:`), the program x test pass matrix run in
isolation, and the minimax selection of `--pairs dstc` against hand-built matrices."""

import json

import pytest

from prefalign.scoring.self_tests import SelfTests
from prefalign.synth import SynthConfig, run_synth
from prefalign.synth.dstc import minimax
from synth_helpers import CannedGenerator


def test_minimax_against_a_hand_built_matrix():
    matrix = [[1, 1, 0, 1],   # code 0 passes 3
              [1, 1, 1, 1],   # code 1 passes 4: chosen
              [0, 1, 0, 0],   # code 2 passes 1: rejected
              [1, 1, 0, 0]]   # code 3 passes 2
    # tests pass 3, 4, 1, 2 codes. Chosen test: of code 1's passed, the fewest passers (t2);
    # rejected test: of code 2's failed (t0, t2, t3), the most passers (t0)
    assert minimax(matrix) == (1, 2, 2, 0)
    # equal maxima: the first; equal minima: the first; test ties: the first
    assert minimax([[0, 0], [1, 1], [1, 1], [0, 0]]) == (1, 0, 0, 0)
    assert minimax([[1, 0], [0, 1]]) is None  # both pass one test: no gap
    # the rejected code's failed tests: t1 (2 passers) beats t2 (1 passer)
    assert minimax([[1, 1, 1], [1, 1, 0], [1, 0, 0]]) == (0, 2, 2, 1)


CODES = ["```python\ndef add(a, b):\n    return a + b\n```",        # passes t0 t1 t3
         "```python\ndef add(a, b):\n    return a - b\n```",        # passes t3
         "```python\ndef add(a, b):\n    return a + b if a else 0\n```"]  # passes t0 t3
TESTS = ["```python\nassert add(1, 2) == 3\n```", "```python\nassert add(0, 5) == 5\n```",
         "```python\nassert add(2, 2) == 5\n```",  # a wrong test: nothing passes it
         "```python\nassert add(0, 0) == 0\n```"]


def _cfg(tmp_path, writer, **kw):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "Write add(a, b)."}) + "\n")
    return SynthConfig(**{"model": "m", "prompts": str(prompts), "n": 3, "pairs": "dstc",
                          "generator": CannedGenerator([CODES]),
                          "scorer_obj": SelfTests(writer, tests=4, timeout=20),
                          "output": str(tmp_path / "o.jsonl"), "progress": False, **kw})


def test_dstc_pairs_from_self_written_tests_run_in_isolation(tmp_path):
    writer = CannedGenerator([TESTS])
    result = run_synth(_cfg(tmp_path, writer))
    # matrix rows: code 0 [1,1,0,1], code 1 [0,0,0,1], code 2 [1,0,0,1]; test passers 2,1,0,3.
    # chosen: code 0 with t1 (its passed test with the fewest passers); rejected: code 1 with t0
    # (its failed test with the most passers)
    [pair] = result.records
    assert pair.chosen == CODES[0] + "\n\n" + TESTS[1]
    assert pair.rejected == CODES[1] + "\n\n" + TESTS[0]
    assert (pair.meta["chosen_test"], pair.meta["rejected_test"]) == (1, 0)
    assert (pair.score_chosen, pair.score_rejected) == (0.75, 0.25)
    assert pair.meta["chosen_votes"] == [1.0, 1.0, 0.0, 1.0]
    # strength: the share of tests agreeing (t0, t1 prefer chosen; t2, t3 tie: half each)
    assert pair.meta["strength"] == 0.75
    # the log keeps the whole matrix and the tests
    [entry] = [json.loads(x) for x in (tmp_path / "o.jsonl.progress.jsonl").read_text()
               .splitlines()][1:]
    assert entry["votes"] == [[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]]
    assert entry["notes"] == {"self_tests": TESTS}
    assert writer.calls == 1
    manifest = json.loads((tmp_path / "o.manifest.json").read_text())
    assert manifest["scorer_details_this_run"]["tests"] == 4
    assert manifest["scorer_stats_this_run"]["tests_written"] == 4
    # a rerun resumes from the log: no test is written again, the same pair comes out
    again = CannedGenerator([TESTS])
    rerun = run_synth(_cfg(tmp_path, again))
    assert again.calls == 0 and rerun.records[0].chosen == pair.chosen


def test_dstc_without_concatenation_and_without_a_gap(tmp_path):
    result = run_synth(_cfg(tmp_path, CannedGenerator([TESTS]), pairs="dstc:concat=0"))
    assert [(p.chosen, p.rejected) for p in result.records] == [(CODES[0], CODES[1])]
    # every code fails every test: no gap, counted
    wrong = ["```python\nassert False\n```"] * 4
    (tmp_path / "b").mkdir()
    result = run_synth(_cfg(tmp_path / "b", CannedGenerator([wrong])))
    assert result.records == [] and result.counts["dropped"]["no_pass_gap"] == 1


def test_dstc_is_refused_before_any_work_without_a_scorer_that_writes_tests(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "q"}) + "\n")
    with pytest.raises(ValueError, match=r"--pairs dstc needs a scorer that makes self_tests "
                                         r"\(selftests:\)"):
        run_synth(SynthConfig(model="/nowhere", prompts=str(prompts), pairs="dstc",
                              scorer="tests:tests", output=str(tmp_path / "o.jsonl"),
                              progress=False))
    assert not (tmp_path / "o.jsonl.progress.jsonl").exists()


def test_selftests_with_a_tiny_model_as_the_writer(tmp_path, tiny_model_dir):
    """The spec path: the writer is a real model (here it writes nonsense, so every run fails
    and no pair is made, counted); the scorer's options are checked before it loads."""
    from prefalign.scoring import build_scorer

    with pytest.raises(ValueError, match="tests=0"):
        build_scorer("selftests:/nowhere?tests=0")
    scorer = build_scorer(f"selftests:{tiny_model_dir()}?tests=2&max_new_tokens=8&timeout=20")
    [row] = scorer.score([(_item(), ["def add(a, b):\n    return a + b"] * 2)])
    tests = row[0].notes["self_tests"]
    assert len(tests) == 2 and row[1].notes["self_tests"] is tests
    assert all(len(s.votes) == 2 for s in row)
    assert scorer.describe()["writer"]["backend"] == "hf"


def _item():
    from prefalign.generation.types import PromptItem

    return PromptItem(index=0, prompt="Write add(a, b).")


def test_iterate_checks_dstc_against_its_scorer_before_any_round(tmp_path, write_prompts):
    from prefalign.loop import IterateConfig, run_iterate
    from prefalign.loop.iterate import check_iterate_settings

    prompts = write_prompts([{"prompt": "Write add(a, b)."}])
    with pytest.raises(ValueError, match="--pairs dstc needs a scorer that makes self_tests"):
        run_iterate(IterateConfig(model="/nowhere", prompts=str(prompts), rounds=1,
                                  output=str(tmp_path / "run"), pairs="dstc",
                                  scorer="tests:tests"))
    assert not (tmp_path / "run").exists()
    # the writer may be the round's policy: accepted, resolved per round
    check_iterate_settings(IterateConfig(model="/nowhere", prompts=str(prompts), rounds=1,
                                         output=str(tmp_path / "run"), pairs="dstc",
                                         scorer="selftests:hf:@policy?tests=3"))


def test_a_weighted_sum_keeps_the_one_terms_votes_and_notes():
    from prefalign.scoring.base import Score, Scorer, WeightedSum

    class Fixed(Scorer):
        def __init__(self, votes=None, notes=None):
            super().__init__()
            self.votes, self.notes = votes, notes

        def score(self, groups):
            return [[Score(1.0, votes=self.votes, notes=self.notes) for _ in r] for _, r in groups]

    groups = [(_item(), ["x"])]
    [[one]] = WeightedSum([(1.0, Fixed((1.0, 0.0), {"self_tests": ["t"]})),
                           (0.5, Fixed())]).score(groups)
    assert (one.value, one.votes, one.notes) == (1.5, (1.0, 0.0), {"self_tests": ["t"]})
    [[two]] = WeightedSum([(1.0, Fixed((1.0,))), (1.0, Fixed((0.0,)))]).score(groups)
    assert two.votes is None  # two terms' votes are not mixed


def test_only_scorers_whose_tests_reach_the_log_satisfy_dstc():
    from prefalign.scoring import notes_made

    assert notes_made("selftests:hf:/m?tests=2") == {"self_tests"}
    assert notes_made("0.5*selftests:hf:/m+0.5*tests:tests") == {"self_tests"}  # a sum keeps them
    assert notes_made("jury:selftests:hf:/m|tests:tests") == set()  # a jury drops them


def test_concatenated_pairs_carry_no_sampled_ids():
    """The responses are code + test, not the sampled tokens: no sampled ids on them."""
    from prefalign.data.sampled import FIELD, SampledIds
    from prefalign.generation.types import PromptItem
    from prefalign.synth.pairs import PairOptions, build_records

    tests = ["assert 1", "assert 0"]
    sampled = SampledIds("tok", [1, 2], [[5, 6], [7, 8]])
    records, _ = build_records(PromptItem(0, "q"), ["code a", "code b"], [1.0, 0.5],
                               PairOptions("dstc"), sampled=sampled,
                               votes=[[1.0, 1.0], [1.0, 0.0]], notes={"self_tests": tests})
    [pair] = records
    assert pair.chosen == "code a\n\nassert 0" and FIELD not in pair.meta
    plain, _ = build_records(PromptItem(0, "q"), ["code a", "code b"], [1.0, 0.5],
                             PairOptions("west-of-n"), sampled=sampled)
    assert FIELD in plain[0].meta  # other strategies keep them
