"""RunningMoments, β-DPO's selection helper, and the logged reward metrics."""

import math
import statistics

import pytest
import torch

from prefalign.objectives import RunningMoments, beta_dpo_selection, implicit_rewards, pairwise_reward_metrics

from .hand import t


def test_running_moments_exact_mode_matches_all_values_seen():
    rm = RunningMoments()
    rm.update(t(1.0, 2.0, 3.0)).update(t(10.0)).update(t(-4.0, 0.5))
    values = [1.0, 2.0, 3.0, 10.0, -4.0, 0.5]
    assert rm.mean == pytest.approx(statistics.fmean(values))
    assert rm.std == pytest.approx(statistics.pstdev(values))
    assert rm.count == 6


def test_running_moments_ema_mode():
    rm = RunningMoments(momentum=0.9)
    rm.update(t(1.0, 3.0))  # initialized from the first batch: mean 2, std 1
    rm.update(t(5.0, 5.0))  # mean 5, std 0
    assert rm.mean == pytest.approx(0.9 * 2 + 0.1 * 5)
    assert rm.std == pytest.approx(0.9 * 1 + 0.1 * 0)


def test_running_moments_state_round_trip():
    rm = RunningMoments()
    rm.update(t(1.0, 2.0))
    other = RunningMoments()
    other.load_state_dict(rm.state_dict())
    other.update(t(3.0))
    assert other.mean == pytest.approx(2.0) and other.count == 3


def test_beta_dpo_selection_by_hand():
    gap = t(0.0, 0.4, 0.6, 3.0)
    beta_b, keep = beta_dpo_selection(gap, beta=0.1, alpha=0.6, filter_ratio=0.25, gap_mean=0.5, gap_std=1.0)
    assert keep.tolist() == [True, True, True, False]
    assert beta_b.item() == pytest.approx(0.1 * (1 + 0.6 * (1.0 / 3 - 0.5)))


def test_beta_dpo_multinomial_sampling_keeps_the_right_count():
    torch.manual_seed(0)
    _, keep = beta_dpo_selection(torch.randn(10), beta=0.1, alpha=0.6, filter_ratio=0.2, sampling="multinomial")
    assert int(keep.sum()) == 8


def test_implicit_rewards_and_metrics():
    r = implicit_rewards(t(-1.0, -2.0), t(-1.5, -1.0), beta=0.2)
    assert torch.allclose(r, t(0.1, -0.2))
    m = pairwise_reward_metrics(t(-1.0, -2.0), t(-3.0, -1.0), t(-1.5, -1.0), t(-3.0, -1.5), beta=0.2)
    assert m["rewards/chosen"] == pytest.approx((0.1 - 0.2) / 2)
    assert m["rewards/rejected"] == pytest.approx((0.0 + 0.1) / 2)
    assert m["rewards/margin"] == pytest.approx(((0.1 - 0.0) + (-0.2 - 0.1)) / 2)
    assert m["rewards/accuracy"] == pytest.approx(0.5)
    assert math.isclose(implicit_rewards(t(-4.0), beta=2.0, lengths=torch.tensor([2])).item(), -4.0)
