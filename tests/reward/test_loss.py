"""The Bradley-Terry loss against hand-computed values."""

import math

import pytest
import torch

from prefalign.reward import bradley_terry_loss

t = lambda *v: torch.tensor(v, dtype=torch.float64)
nls = lambda x: math.log1p(math.exp(-x))            # -log sigmoid(x)


def test_loss_is_mean_negative_log_sigmoid_of_the_reward_difference():
    loss = bradley_terry_loss(t(2.0, 0.0), t(1.0, 1.0))
    assert loss.item() == pytest.approx((nls(1.0) + nls(-1.0)) / 2)


def test_equal_rewards_give_log_two():
    assert bradley_terry_loss(t(0.3), t(0.3)).item() == pytest.approx(math.log(2))


def test_margin_is_subtracted_from_the_difference():
    loss = bradley_terry_loss(t(2.0, 0.0), t(1.0, 1.0), margin=t(0.5, 2.0))
    assert loss.item() == pytest.approx((nls(0.5) + nls(-3.0)) / 2)


def test_reward_centering_adds_coefficient_times_mean_squared_sum():
    loss = bradley_terry_loss(t(2.0, 0.0), t(1.0, 1.0), center_rewards_coefficient=0.01)
    expected = (nls(1.0) + nls(-1.0)) / 2 + 0.01 * (9 + 1) / 2
    assert loss.item() == pytest.approx(expected)


def test_gradient_raises_chosen_and_lowers_rejected():
    c, r = t(0.0).requires_grad_(), t(0.0).requires_grad_()
    bradley_terry_loss(c, r).backward()
    assert c.grad.item() == pytest.approx(-0.5) and r.grad.item() == pytest.approx(0.5)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        bradley_terry_loss(t(1, 2), t(1))
