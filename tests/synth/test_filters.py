"""The built-in pair filters against hand-computed values, and the registry's checks."""

from collections import Counter

import pytest

from prefalign.data.records import PairRecord, UnpairedRecord
from prefalign.synth.filters import apply_filters, parse_filter, pair_filter
from prefalign.data.similarity import jaccard, normalise
from prefalign.synth.filters.rip import quantile


def pair(prompt, chosen, rejected, sc=None, sr=None):
    return PairRecord(prompt, chosen, rejected, score_chosen=sc, score_rejected=sr)


def test_normalise_and_jaccard_by_hand():
    assert normalise("  Hello,\tWORLD!! ") == "hello world"
    assert normalise([{"role": "assistant", "content": "Ｆｕｌｌ-width"}]) == "full width"
    # {abc, bcd} vs {abc, bce}: one shared of three
    assert jaccard("abcd", "abce", 3) == pytest.approx(1 / 3)
    assert jaccard("ab", "ab", 3) == 1.0 and jaccard("ab", "abc", 3) == 0.0


def test_near_dup_drops_similar_pairs_repeats_and_optionally_repeated_prompts():
    records = [pair("p1", "The answer is 4.", "the answer is 4!"),   # equal after normalising
               pair("p1", "abcd", "abce"),                         # Jaccard 1/3
               pair("p2", "four", "five"),
               pair("P2 ", "Four", "FIVE"),                        # a repeat after normalising
               pair("p3", "yes", "no")]
    kept, report = apply_filters(records, [parse_filter("near-dup:0.3")])
    assert [(r.prompt, r.chosen) for r in kept] == [("p2", "four"), ("p3", "yes")]
    assert report[0]["dropped"] == {"near_duplicate_pair": 2, "duplicate_record": 1}
    kept, report = apply_filters(records, [parse_filter("near-dup:threshold=0.5,prompts=first")])
    # abcd/abce (1/3 < 0.5) is kept and p1's first kept record; p2's repeat is a duplicate
    assert [(r.prompt, r.chosen) for r in kept] == [("p1", "abcd"), ("p2", "four"), ("p3", "yes")]
    assert report[0]["dropped"] == {"near_duplicate_pair": 1, "duplicate_record": 1}
    with_prompts = records + [pair("p3", "maybe", "never")]
    kept, report = apply_filters(with_prompts, [parse_filter("near-dup:prompts=first")])
    assert report[0]["dropped"]["repeated_prompt"] == 1


def test_quantile_interpolates_like_numpy():
    values = [0.5, -1.0, 0.8, 0.0, 0.4]  # sorted: -1, 0, 0.4, 0.5, 0.8
    assert quantile(values, 0.0) == -1.0 and quantile(values, 1.0) == 0.8
    assert quantile(values, 0.5) == 0.4
    assert quantile(values, 0.3) == pytest.approx(0.08)  # position 1.2: 0 + 0.2 * 0.4
    assert quantile([3.0], 0.7) == 3.0


RIP_PAIRS = [pair("a", "c", "r", 1.0, 0.0), pair("b", "c", "r", 1.0, 0.5),
             pair("c", "c", "r", 0.9, 0.8), pair("d", "c", "r", 2.0, -1.0),
             pair("e", "c", "r", 0.5, 0.4)]


def test_rip_by_quantiles_by_hand():
    # rejected floor: the 0.3-quantile 0.08 drops a (0.0) and d (-1.0); gaps 1, .5, .1, 3, .1:
    # the 0.5-quantile is 0.5, so b (gap .5) stays and none of the rest is above it
    kept, report = apply_filters(RIP_PAIRS, [parse_filter("rip:rejected_quantile=0.3,"
                                                          "gap_quantile=0.5")])
    assert [r.prompt for r in kept] == ["b", "c", "e"]
    assert report[0]["dropped"] == {"low_rejected": 2}
    kept, report = apply_filters(RIP_PAIRS, [parse_filter("rip:gap_quantile=0.5")])
    assert [r.prompt for r in kept] == ["b", "c", "e"]  # a (gap 1) and d (gap 3) are above 0.5
    assert report[0]["dropped"] == {"large_gap": 2}


def test_rip_by_values_and_its_refusals():
    kept, report = apply_filters(RIP_PAIRS, [parse_filter("rip:min_rejected=0.45,max_gap=0.2")])
    assert [r.prompt for r in kept] == ["c"]
    assert report[0]["dropped"] == {"low_rejected": 3, "large_gap": 1}
    # threshold checks are made when the spec is read (before any sampling)
    with pytest.raises(ValueError, match="give min_rejected or rejected_quantile, not both"):
        parse_filter("rip:min_rejected=0,rejected_quantile=0.5")
    with pytest.raises(ValueError, match="give a threshold"):
        parse_filter("rip")
    from prefalign.synth.filters import check_filters

    with pytest.raises(ValueError, match="filter rip filters pairs; --pairs gives ranked"):
        check_filters([parse_filter("rip:max_gap=1")], "ranked")
    pair_with_origin = pair("a", "c", "r")
    pair_with_origin.meta.update(prompt_index=7, chosen_index=1, rejected_index=4)
    with pytest.raises(ValueError, match="the record of prompt 7, samples 1 and 4 has no"):
        apply_filters([pair_with_origin], [parse_filter("rip:max_gap=1")])
    with pytest.raises(ValueError, match="record 1 has no score_chosen"):
        apply_filters([pair("a", "c", "r")], [parse_filter("rip:max_gap=1")])
    with pytest.raises(ValueError, match="record 1 is unpaired"):
        apply_filters([UnpairedRecord("a", "c", True)], [parse_filter("rip:max_gap=1")])
    with pytest.raises(ValueError, match=r"rejected_quantile must be in \[0, 1\]"):
        parse_filter("rip:rejected_quantile=1.5")


def test_filters_run_in_order_and_a_filter_must_count_what_it_drops(monkeypatch):
    from prefalign.synth import filters

    reg = filters._REGISTRY
    reg.all()
    monkeypatch.setattr(reg, "entries", dict(reg.entries))
    monkeypatch.setattr(reg, "_modules", dict(reg._modules))

    @pair_filter("drop-silently", summary="a broken filter")
    def broken(records, options, dropped: Counter):
        return records[1:]

    with pytest.raises(ValueError, match="dropped 1 records but counted 0"):
        apply_filters(RIP_PAIRS, [parse_filter("drop-silently")])
    with pytest.raises(ValueError, match="takes no options"):
        parse_filter("drop-silently:3")
    # in order: rip keeps b, c, e (gaps .5, .1, .1); near-dup:prompts=first then sees three
    twice = [pair("b", "x", "y", 1.0, 0.9)]
    kept, report = apply_filters(RIP_PAIRS + twice, [parse_filter("rip:max_gap=0.5"),
                                                     parse_filter("near-dup:prompts=first")])
    assert [r["records_in"] for r in report] == [6, 4]
    assert [r.prompt for r in kept] == ["b", "c", "e"]
    assert report[1]["dropped"] == {"repeated_prompt": 1}
