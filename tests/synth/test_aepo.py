"""`aepo`: diverse MBR's objective by hand, its selection against brute force, and the pair."""

import itertools

import pytest

from prefalign.generation.types import PromptItem
from prefalign.synth.aepo import dmbr_objective, dmbr_select
from prefalign.synth.pairs import PairOptions, build_records

# responses 0 and 1 near-identical, 2 a bit like both, 3 unlike anything
M = [[1.0, 0.9, 0.5, 0.1],
     [0.9, 1.0, 0.4, 0.0],
     [0.5, 0.4, 1.0, 0.2],
     [0.1, 0.0, 0.2, 1.0]]


def test_the_objective_by_hand():
    # S = {0, 2}: quality (column sums without the diagonal: 1.5 + 1.1) / (3 * 2) = 2.6 / 6;
    # diversity: M[0][2] + M[2][0] = 1.0, / (2 * 1), times λ = 1
    assert dmbr_objective(M, [0, 2], 1.0) == pytest.approx(2.6 / 6 - 0.5)
    assert dmbr_objective(M, [0, 2], 0.0) == pytest.approx(2.6 / 6)


@pytest.mark.parametrize("k,penalty", [(2, 0.0), (2, 1.0), (2, 3.0), (3, 1.0), (3, 0.2)])
def test_the_selection_is_the_best_subset(k, penalty):
    best = max(itertools.combinations(range(4), k), key=lambda s: dmbr_objective(M, s, penalty))
    assert dmbr_objective(M, dmbr_select(M, k, penalty), penalty) == pytest.approx(
        dmbr_objective(M, best, penalty))


def test_no_penalty_picks_the_most_typical_and_a_penalty_spreads_out():
    assert dmbr_select(M, 2, 0.0) == [0, 1]  # the two most similar to everything
    assert 3 not in dmbr_select(M, 2, 0.0) and dmbr_select(M, 2, 3.0) != [0, 1]


def test_aepo_pairs_the_best_and_worst_of_the_subset():
    item = PromptItem(0, "p")
    texts = ["the answer is four", "the answer is four.", "it is 4", "zzz qqq"]
    scores = [0.2, 0.9, 0.5, 0.0]
    recs, _ = build_records(item, texts, scores, PairOptions("aepo:k=2,diversity_penalty=0"))
    # no penalty: the two near-identical typical answers; the better scored is chosen
    assert [(r.chosen, r.rejected) for r in recs] == [("the answer is four.",
                                                       "the answer is four")]
    recs, _ = build_records(item, texts, scores, PairOptions("aepo:k=4"))
    assert [(r.chosen, r.rejected) for r in recs] == [("the answer is four.", "zzz qqq")]
