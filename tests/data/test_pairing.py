"""One pair selection (data/pairing.py) behind ranked_to_pairs and synth's build_records."""

from __future__ import annotations

import random

import pytest

from prefalign.data import RankedRecord, ranked_to_pairs
from prefalign.data.pairing import PAIR_STRATEGIES, pair_indices

SCORES = [0.5, 2.0, -1.0, 0.75, 2.0]


def test_each_strategy_picks_the_documented_positions():
    assert pair_indices(SCORES, "best_vs_worst") == [(1, 2)]  # the first maximum
    assert pair_indices(SCORES, "best_vs_each") == [(1, 0), (1, 2), (1, 3), (1, 4)]
    assert pair_indices(SCORES, "best_vs_second") == [(1, 3)]  # strictly worse than the best
    assert pair_indices(SCORES, "sweet_spot") == [(1, 2)]
    assert pair_indices([1.0, 3.0, 2.0], "all_pairs") == [(1, 0), (2, 0), (1, 2)]
    drawn = pair_indices(SCORES, "best_vs_random", rng=random.Random(3))
    assert drawn[0][0] == 1 and SCORES[drawn[0][1]] < 2.0


def test_all_tied_gives_the_tie_for_the_caller_to_count():
    for strategy in ("best_vs_worst", "best_vs_second", "sweet_spot"):
        assert pair_indices([1.0, 1.0], strategy) == [(0, 0)]
    rng = random.Random(0)
    state = rng.getstate()
    assert pair_indices([1.0, 1.0], "best_vs_random", rng=rng) == [(0, 0)]
    assert rng.getstate() == state  # no draw when nothing is worse


def test_chosen_never_scores_below_rejected():
    rng = random.Random(1)
    for _ in range(50):
        scores = [rng.choice([0.0, 1.0, 2.5, -3.0]) for _ in range(rng.randint(1, 6))]
        for strategy in PAIR_STRATEGIES:
            for c, r in pair_indices(scores, strategy, rng=random.Random(0)):
                assert scores[c] >= scores[r]


def test_errors():
    with pytest.raises(ValueError, match="unknown pair strategy"):
        pair_indices([1.0, 0.0], "west-of-n")
    with pytest.raises(ValueError, match="needs an rng"):
        pair_indices([1.0, 0.0], "best_vs_random")


def test_ranked_to_pairs_and_synth_pairs_agree():
    from prefalign.generation.types import PromptItem
    from prefalign.synth.pairs import PairOptions, build_records

    texts = ["a", "b", "c", "d", "e"]
    for ours, theirs in (("best_vs_worst", "west-of-n"), ("all_pairs", "all-pairs")):
        pairs, _ = ranked_to_pairs([RankedRecord("q", texts, SCORES)], ours)
        records, _ = build_records(PromptItem(index=0, prompt="q"), texts, SCORES,
                                   PairOptions(strategy=theirs))
        assert [(p.chosen, p.rejected, p.margin) for p in pairs] == \
            [(r.chosen, r.rejected, r.margin) for r in records]
