"""Conversions: ranked lists to pairs (margin = score gap; ties counted), pairs to unpaired/SFT."""

from __future__ import annotations

import pytest

from prefalign.data import (
    PairRecord, RankedRecord, SFTRecord, UnpairedRecord, pairs_to_sft, pairs_to_unpaired,
    ranked_to_pairs)

LIST = RankedRecord("q", ["a", "b", "c", "d"], [0.5, 2.0, -1.0, 0.75], meta={"id": 7})


def triples(pairs):
    return [(p.chosen, p.rejected, p.margin) for p in pairs]


def test_best_vs_worst_keeps_the_gap_as_margin_and_the_scores():
    (pair,), report = ranked_to_pairs([LIST], "best_vs_worst")
    assert pair == PairRecord("q", "b", "c", margin=3.0, score_chosen=2.0, score_rejected=-1.0,
                              meta={"id": 7})
    assert report.records == report.produced == 1 and not report.dropped


def test_best_vs_each_pairs_the_top_with_every_other():
    pairs, _ = ranked_to_pairs([LIST], "best_vs_each")
    assert triples(pairs) == [("b", "a", 1.5), ("b", "c", 3.0), ("b", "d", 1.25)]


def test_all_pairs_with_a_minimum_gap_counts_what_it_leaves_out():
    pairs, report = ranked_to_pairs([LIST], "all_pairs", min_gap=1.0)
    assert triples(pairs) == [("b", "a", 1.5), ("a", "c", 1.5), ("b", "c", 3.0), ("b", "d", 1.25),
                              ("d", "c", 1.75)]
    assert report.dropped == {"below_min_gap": 1}  # a vs d: 0.25
    assert all(p.margin == p.score_chosen - p.score_rejected for p in pairs)


def test_ties_and_identical_texts_make_no_pair_and_are_counted():
    tied = RankedRecord("q", ["x", "y"], [1.0, 1.0])
    same = RankedRecord("q", ["x", "x", "z"], [3.0, 1.0, 3.0])
    pairs, report = ranked_to_pairs([tied, same], "best_vs_each")
    assert [(p.chosen, p.rejected) for p in pairs] == []
    assert report.dropped == {"tie": 2, "identical_responses": 1}
    assert "candidate pairs not made: 3" in report.summary()
    _, report = ranked_to_pairs([tied], "best_vs_worst")
    assert report.dropped == {"tie": 1} and report.produced == 0


def test_conversions_check_their_arguments():
    with pytest.raises(ValueError, match="unknown strategy"):
        ranked_to_pairs([LIST], "best_of_n")
    with pytest.raises(ValueError, match="min_gap"):
        ranked_to_pairs([LIST], min_gap=-1)


def test_pairs_to_unpaired_labels_chosen_true_and_rejected_false():
    pair = PairRecord([{"role": "user", "content": "u"}], [{"role": "assistant", "content": "a"}],
                      [{"role": "assistant", "content": "b"}], system="S", meta={"id": 1})
    good, bad = pairs_to_unpaired([pair])
    assert good == UnpairedRecord(pair.prompt, pair.chosen, True, system="S", meta={"id": 1})
    assert bad == UnpairedRecord(pair.prompt, pair.rejected, False, system="S", meta={"id": 1})
    good.prompt[0]["content"] = "changed"
    assert pair.prompt[0]["content"] == "u"  # copies, not shared lists


def test_pairs_to_sft_keeps_the_chosen_response():
    assert pairs_to_sft([PairRecord("p", "c", "r")]) == [SFTRecord("p", "c")]
