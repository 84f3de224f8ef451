"""Each diagnostic against values computed by hand from its formula."""

import math

import pytest
import torch

from prefalign.eval import metrics as M

t = lambda *v: torch.tensor(v, dtype=torch.float64)


def test_implicit_reward_metrics_by_hand():
    # r_w = 0.5*([-1,-2]-[-2,-2]) = [0.5, 0]; r_l = 0.5*([-3,-1]-[-2,-2]) = [-0.5, 0.5]
    out = M.implicit_reward_metrics(t(-1, -2), t(-3, -1), t(-2, -2), t(-2, -2), beta=0.5)
    assert out["rewards/chosen"] == pytest.approx(0.25)
    assert out["rewards/rejected"] == pytest.approx(0.0)
    assert out["rewards/margin"] == pytest.approx(0.25)   # mean([1.0, -0.5])
    assert out["rewards/accuracy"] == pytest.approx(0.5)


def test_ranking_accuracy_and_length_normalised_variant_differ_by_hand():
    out = M.ranking_accuracy(t(-1, -5, -3), t(-2, -4, -3),
                             chosen_lengths=t(1, 10, 1), rejected_lengths=t(1, 2, 1))
    assert out["ranking_accuracy"] == pytest.approx(1 / 3)          # only pair 0; tie is wrong
    # per token: chosen [-1, -0.5, -3] vs rejected [-2, -2, -3]
    assert out["ranking_accuracy/length_normalized"] == pytest.approx(2 / 3)


def test_idealized_ranking_accuracy_by_hand():
    # ref diffs: [-1, +1, -0.5]; logit(0.6)/0.1 = 4.0547 flips the third pair only
    out = M.idealized_ranking_accuracy(t(-5, -5, -5), t(-4, -6, -4.5), beta=0.1,
                                       preference_prob=t(0.5, 0.5, 0.6))
    assert out["idealized_ranking_accuracy"] == pytest.approx(2 / 3)
    assert out["reference_ranking_accuracy"] == pytest.approx(1 / 3)


def test_idealized_ranking_is_perfect_for_deterministic_labels():
    out = M.idealized_ranking_accuracy(t(-50, -1), t(-1, -50), beta=0.1)
    assert out["idealized_ranking_accuracy"] == 1.0


def test_idealized_ranking_with_coin_flip_preferences_is_the_reference_ranking():
    ref_w, ref_l = t(-3, -1, -2, -7), t(-2, -4, -2.5, -1)
    out = M.idealized_ranking_accuracy(ref_w, ref_l, beta=0.3,
                                       preference_prob=torch.full((4,), 0.5, dtype=torch.float64))
    assert out["idealized_ranking_accuracy"] == out["reference_ranking_accuracy"] == 0.5


def test_preference_against_the_label_can_make_the_idealized_ranking_wrong():
    # ref diff +1, alpha 0.3: 1 + logit(0.3)/0.1 = 1 - 8.47 < 0
    out = M.idealized_ranking_accuracy(t(-1), t(-2), beta=0.1, preference_prob=t(0.3))
    assert out["idealized_ranking_accuracy"] == 0.0


def test_preference_probability_from_scores_is_bradley_terry():
    p = M.preference_probability(t(2.0), t(1.0))
    assert p.item() == pytest.approx(1 / (1 + math.exp(-1)))
    assert M.preference_probability(n=3).tolist() == [1.0, 1.0, 1.0]


def test_alignment_gap_is_idealized_minus_actual():
    assert M.alignment_gap(0.9, 0.55) == pytest.approx(0.35)


def test_kl_from_samples_k1_and_k3_by_hand():
    out = M.kl_from_samples(t(-1, -2), t(-2, -2))        # log ratios [1, 0]
    assert out["kl/k1"] == pytest.approx(0.5)
    assert out["kl/k3"] == pytest.approx((math.exp(-1) - 1 + 1) / 2)
    assert out["kl/samples"] == 2


def test_kl_k3_is_never_negative_and_zero_for_identical_models():
    lp = torch.randn(50, dtype=torch.float64)
    out = M.kl_from_samples(lp, lp + torch.randn(50, dtype=torch.float64))
    assert out["kl/k3"] >= 0
    same = M.kl_from_samples(lp, lp)
    assert same["kl/k1"] == same["kl/k3"] == 0


def test_length_stats_by_hand():
    out = M.length_stats([1, 2, 3, 10], prefix="len")
    assert out == pytest.approx({"len/mean": 4.0, "len/std": math.sqrt(12.5), "len/min": 1.0,
                                 "len/median": 2.0, "len/max": 10.0})


def test_likelihood_displacement_by_hand():
    # d_w = [1, -1], d_l = [-1, -1]
    out = M.likelihood_displacement(t(-1, -3), t(-5, -3), t(-2, -2), t(-4, -2))
    assert out == pytest.approx({"displacement/chosen_delta": 0.0,
                                 "displacement/chosen_decreased": 0.5,
                                 "displacement/rejected_delta": -1.0,
                                 "displacement/rejected_decreased": 1.0,
                                 "displacement/both_decreased": 0.5})


def test_token_stat_summary_splits_chosen_and_rejected_tokens():
    seq = torch.tensor([0, 0, 1, 2, 3, 3])                 # slots 0,0,1,0,1,1 with K=2
    out = M.token_stat_summary({"topk_mass": t(1, 2, 3, 4, 5, 6)}, seq, num_responses=2)
    assert out == pytest.approx({"topk_mass/all": 3.5, "topk_mass/chosen": 7 / 3,
                                 "topk_mass/rejected": 14 / 3})


def test_mismatched_shapes_and_empty_inputs_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        M.ranking_accuracy(t(1, 2), t(1))
    with pytest.raises(ValueError, match="no pairs"):
        M.ranking_accuracy(t(), t())
    with pytest.raises(ValueError, match="beta"):
        M.idealized_ranking_accuracy(t(1), t(0), beta=0)
