"""Pair builders on hand-made scores: which responses pair, margins, and counted drops."""

from collections import Counter

import pytest

from prefalign.data import PairRecord, RankedRecord, UnpairedRecord, validate_record
from prefalign.synth.pairs import PairOptions, build_records
from prefalign.generation.types import PromptItem

ITEM = PromptItem(3, "Q?")
TEXTS = ["a", "b", "c", "d", "e"]
SCORES = [0.2, 0.9, 0.5, 0.1, 0.6]


def build(strategy, texts=TEXTS, scores=SCORES, item=ITEM, **kw):
    return build_records(item, texts, scores, PairOptions(strategy, **kw))


def pair_of(records):
    assert len(records) == 1 and isinstance(records[0], PairRecord)
    r = records[0]
    validate_record(r)
    return r.chosen, r.rejected, r.margin


def test_west_of_n_is_best_vs_worst_with_scores_and_margin():
    records, dropped = build("west-of-n")
    assert pair_of(records) == ("b", "d", pytest.approx(0.8))
    r = records[0]
    assert (r.score_chosen, r.score_rejected) == (0.9, 0.1)
    assert r.meta == {"prompt_index": 3, "chosen_index": 1, "rejected_index": 3}
    assert dropped == Counter()


def test_best_vs_second():
    assert pair_of(build("best-vs-second")[0])[:2] == ("b", "e")


def test_best_vs_random_picks_a_strictly_worse_response_reproducibly():
    picks = {pair_of(build("best-vs-random", seed=s)[0])[1] for s in range(20)}
    assert picks <= {"a", "c", "d", "e"} and len(picks) > 1
    assert build("best-vs-random", seed=5)[0] == build("best-vs-random", seed=5)[0]


def test_sweet_spot_takes_the_response_nearest_mu_minus_two_sigma_not_the_worst():
    # 22 responses: one at 2, nineteen at 1, one at 0 and an outlier at -3.
    # mu = 18/22 = 0.818, sigma = 0.886 (population), mu - 2 sigma = -0.954: nearest is 0, not -3.
    scores = [2.0] + [1.0] * 19 + [0.0, -3.0]
    texts = [f"r{i}" for i in range(22)]
    chosen, rejected, margin = pair_of(build("sweet-spot", texts, scores)[0])
    assert (chosen, rejected, margin) == ("r0", "r20", 2.0)
    assert pair_of(build("west-of-n", texts, scores)[0])[1] == "r21"


def test_sweet_spot_with_a_far_outlier_takes_the_outlier():
    # mu = -0.26, sigma = 2.370: mu - 2 sigma = -5.0006 is nearest to the outlier at -5.
    texts, scores = list("abcde"), [1.0, 0.9, 0.9, 0.9, -5.0]
    assert pair_of(build("sweet-spot", texts, scores)[0])[1] == "e"


def test_all_pairs_above_min_gap():
    records, dropped = build("all-pairs", min_gap=0.35)
    got = sorted((r.chosen, r.rejected) for r in records)
    assert got == [("b", "a"), ("b", "c"), ("b", "d"), ("c", "d"), ("e", "a"), ("e", "d")]
    assert all(r.margin >= 0.35 for r in records)
    assert dropped == Counter(below_min_gap=4)


def test_ranked_keeps_every_unique_scored_response():
    records, _ = build("ranked")
    assert len(records) == 1 and isinstance(records[0], RankedRecord)
    assert records[0].completions == TEXTS and records[0].scores == SCORES
    validate_record(records[0])


def test_unpaired_by_threshold_and_from_west_of_n():
    records, _ = build("unpaired", label_threshold=0.5)
    assert all(isinstance(r, UnpairedRecord) for r in records)
    assert [r.label for r in records] == [False, True, True, False, True]
    records, _ = build("unpaired")
    assert [(r.completion, r.label) for r in records] == [("b", True), ("d", False)]


def test_identical_empty_and_unscored_responses_are_dropped_and_counted():
    texts = ["x", "x", "", "y", "z", "y"]
    scores = [0.5, 0.9, 0.3, None, 0.1, 0.2]
    records, dropped = build("west-of-n", texts, scores)
    # the repeated "x" (0.9) is dropped, not used; the first "y" is unscored, the second is kept
    assert pair_of(records)[:2] == ("x", "z")
    assert dropped == Counter(identical_responses=1, empty_response=1, unscored=1)


def test_ties_are_dropped_and_counted_by_every_strategy():
    for strategy in ("west-of-n", "best-vs-random", "best-vs-second", "sweet-spot", "ranked",
                     "unpaired"):
        records, dropped = build(strategy, ["p", "q", "r"], [1.0, 1.0, 1.0])
        assert records == [] and dropped == Counter(tie=1), strategy
    records, dropped = build("all-pairs", ["p", "q", "r"], [1.0, 1.0, 0.0])
    assert len(records) == 2 and dropped == Counter(tie=1)


def test_too_few_responses():
    records, dropped = build("west-of-n", ["p", "p"], [1.0, 0.0])
    assert records == [] and dropped == Counter(identical_responses=1, too_few_responses=1)


def test_length_penalty_changes_the_winner():
    texts, scores = ["short", "a much longer answer"], [1.0, 1.1]
    assert pair_of(build("west-of-n", texts, scores)[0])[0] == "a much longer answer"
    chosen, _, margin = pair_of(build("west-of-n", texts, scores, length_penalty=0.01)[0])
    assert chosen == "short" and margin == pytest.approx((1.0 - 0.05) - (1.1 - 0.2))


def test_chat_prompts_get_assistant_message_responses():
    item = PromptItem(0, [{"role": "user", "content": "hi"}])
    r = build("west-of-n", ["a", "b"], [1, 0], item=item)[0][0]
    assert r.chosen == [{"role": "assistant", "content": "a"}]
    validate_record(r)


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown pair strategy 'best'.*west-of-n"):
        PairOptions("best")


def test_responses_that_differ_only_in_whitespace_are_dropped_and_counted_unless_kept():
    texts = ["def f(a, b):\n    return a+b", "def f(a, b):\n  return a + b ", "wrong"]
    scores = [1.0, 0.0, 0.5]
    records, dropped = build("west-of-n", texts, scores)
    assert pair_of(records)[:2] == (texts[0], "wrong")
    assert dropped["whitespace_only_difference"] == 1
    records, dropped = build("all-pairs", texts, scores)
    assert [pair_of([r])[:2] for r in records] == [(texts[0], "wrong")]
    records, dropped = build("west-of-n", texts, scores, keep_whitespace_variants=True)
    assert [(r.chosen, r.rejected) for r in records] == [(texts[0], texts[1])]
    assert not dropped["whitespace_only_difference"]
    with pytest.raises(ValueError, match="only in whitespace"):  # what training would say
        validate_record(records[0])
    validate_record(records[0], keep_whitespace_variants=True)
