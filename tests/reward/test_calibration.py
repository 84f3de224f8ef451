"""Calibration of a reward model's pairwise probabilities: ECE and the reliability bins by
hand, accuracy by margin bucket."""

import math

import pytest

from prefalign.reward.calibration import (accuracy_by_margin, calibration,
                                        expected_calibration_error, reliability)


def test_ece_and_reliability_by_hand():
    # confidences 0.9, 0.8, 0.7, 0.6; right, right, wrong (p < 1/2), right. Two bins:
    # [0.5, 0.75): 0.7 (wrong), 0.6 (right): confidence 0.65, accuracy 0.5 -> |0.15| · 2/4
    # [0.75, 1]: 0.9, 0.8, both right: confidence 0.85, accuracy 1 -> |0.15| · 2/4
    probs = [0.9, 0.8, 0.3, 0.6]
    rows = reliability(probs, bins=2)
    assert [(r["n"], r["confidence"], r["accuracy"]) for r in rows] == [
        (2, pytest.approx(0.65), 0.5), (2, pytest.approx(0.85), 1.0)]
    assert expected_calibration_error(probs, bins=2) == pytest.approx(0.15)
    assert expected_calibration_error([0.5, 0.5]) == pytest.approx(0.0)  # ties: half right


def test_accuracy_by_margin_buckets_and_the_summary():
    margins = [-0.1, 0.2, 3.0, -2.0, 0.05, 1.5, 4.0, -0.3]
    rows = accuracy_by_margin(margins, buckets=2)
    # smallest |margin|s: 0.05, -0.1, 0.2, -0.3 (2 of 4 right); largest: 1.5, -2.0, 3.0, 4.0 (3 of 4)
    assert [(r["n"], r["accuracy"]) for r in rows] == [(4, 0.5), (4, 0.75)]
    assert (rows[0]["abs_margin_low"], rows[1]["abs_margin_high"]) == (0.05, 4.0)
    summary = calibration(margins)
    probs = [1 / (1 + math.exp(-m)) for m in margins]
    assert summary["ece"] == pytest.approx(expected_calibration_error(probs))
