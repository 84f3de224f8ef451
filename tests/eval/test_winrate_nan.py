"""A NaN score is never read as a number in the win rate: an error by default, or the loss of
the side it is on."""

import math

import pytest

from prefalign.eval import outcomes_from_scores, win_rate

NAN = float("nan")


def test_a_nan_score_is_an_error_naming_the_prompt_and_side():
    with pytest.raises(ValueError, match=r"prompt 1: the reference score is NaN"):
        outcomes_from_scores([1.0, 2.0], [0.0, NAN])
    with pytest.raises(ValueError, match=r"prompt 0: the policy score is NaN"):
        outcomes_from_scores([NAN, 2.0], [0.0, 1.0])


def test_nan_lose_counts_the_unscored_side_as_the_loser_on_either_side():
    out = outcomes_from_scores([NAN, 1.0, NAN, 0.5], [0.0, NAN, NAN, 0.25], nan="lose")
    assert out == [-1, 1, 0, 1]
    assert win_rate(out)["win_rate"] == pytest.approx((2 + 0.5) / 4)


def test_equal_infinities_tie():
    assert outcomes_from_scores([math.inf, -math.inf], [math.inf, -math.inf]) == [0, 0]
