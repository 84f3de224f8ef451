"""`rso` (statistical rejection sampling): RSO's Algorithm 1 against its formula, and the
strategy through synth's pairing."""

import math
import random
from collections import Counter

import pytest

from prefalign.generation.types import PromptItem
from prefalign.synth.pairs import PairOptions, build_records
from prefalign.synth.rso import rejection_sample

DRAWS = 40000


def _frequencies(scores, beta, accepted):
    counts = Counter()
    for seed in range(DRAWS):
        counts[tuple(rejection_sample(scores, beta, accepted, random.Random(seed)))] += 1
    return {k: v / DRAWS for k, v in counts.items()}


def test_one_accepted_sample_follows_the_acceptance_probabilities():
    # scores 0, 0.5, 1 at β = 0.5: the first sweep accepts sample 0 with e^-2, else sample 1
    # with e^-1, else sample 2 (the best) surely
    freq = _frequencies([0.0, 0.5, 1.0], 0.5, 1)
    p0 = math.exp(-2)
    p1 = (1 - p0) * math.exp(-1)
    assert freq[(0,)] == pytest.approx(p0, abs=0.006)
    assert freq[(1,)] == pytest.approx(p1, abs=0.006)
    assert freq[(2,)] == pytest.approx(1 - p0 - p1, abs=0.006)


def test_the_maximum_moves_once_the_best_is_accepted():
    # [1, 0] at β = 1, two accepted: sample 0 (the best) is accepted first in the first sweep;
    # sample 1 is then accepted in that sweep with e^-1 (r_max is still 1), else in the next
    # sweep surely (it is the maximum of what is left): both always, in order 0, 1
    assert _frequencies([1.0, 0.0], 1.0, 2) == {(0, 1): 1.0}
    # [0, 1]: sample 0 first with e^-1 (then 1 surely), else 1 first and then 0 next sweep
    freq = _frequencies([0.0, 1.0], 1.0, 2)
    assert freq[(0, 1)] == pytest.approx(math.exp(-1), abs=0.006)
    assert freq[(1, 0)] == pytest.approx(1 - math.exp(-1), abs=0.006)


def test_a_small_beta_accepts_only_the_best_and_a_large_one_nearly_everything():
    scores = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert rejection_sample(scores, 1e-3, 1, random.Random(0)) == [5]
    first_sweep = Counter()
    for seed in range(2000):
        first_sweep[len(rejection_sample(scores, 1e3, 6, random.Random(seed)))] += 1
    assert first_sweep == {6: 2000}  # it stops when all are accepted, never loops


def _records(strategy, scores, seed=0):
    item = PromptItem(3, "p")
    texts = [f"r{i}" for i in range(len(scores))]
    return build_records(item, texts, scores, PairOptions(strategy, seed=seed))


def test_rso_pairs_the_accepted_samples():
    scores = [0.0, 0.1, 0.9, 1.0, 0.5, 0.3]
    recs, dropped = _records("rso:beta=0.5,accepted=3", scores)
    assert len(recs) == 1  # best vs worst of the accepted
    accepted = rejection_sample(scores, 0.5, 3, random.Random(
        __import__("prefalign.generation.types", fromlist=["sample_seed"]).sample_seed(0, 3, -2)))
    best = max(accepted, key=lambda i: scores[i])
    worst = min(accepted, key=lambda i: scores[i])
    assert (recs[0].meta["chosen_index"], recs[0].meta["rejected_index"]) == (best, worst)
    recs, _ = _records("rso:beta=0.5,accepted=3,pairing=all-pairs", scores)
    assert len(recs) == 3 and all(r.margin > 0 for r in recs)
    # the same seed accepts the same samples
    assert [r.to_row() for r in _records("rso:accepted=3", scores)[0]] == \
        [r.to_row() for r in _records("rso:accepted=3", scores)[0]]


def test_rso_options_are_checked_before_any_work():
    with pytest.raises(ValueError, match="pair strategy rso: beta must be a finite number > 0"):
        PairOptions("rso:beta=0")
    with pytest.raises(ValueError, match=r"unknown option\(s\) acepted \(did you mean "
                                         r"accepted\?\)"):
        PairOptions("rso:acepted=3")
    with pytest.raises(ValueError, match="pair strategy west-of-n takes no options"):
        PairOptions("west-of-n:3")
