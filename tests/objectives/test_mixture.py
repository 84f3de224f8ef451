"""Weighted mixtures of objectives (TRL's loss_type lists with loss_weights; MPO): the total is
Σ w_i ℓ_i of the terms computed alone, on asymmetric pairs; sft terms train on the chosen
responses; shapes that do not mix, bad weights and running statistics are refused (the trainer's
logging of each term: tests/train/test_mixture_train.py)."""

import pytest
import torch

from prefalign.objectives import compute, compute_unpaired, get
from prefalign.objectives.mixture import mixture_name

PW, PL = torch.tensor([-1.0, -2.0, -3.5]), torch.tensor([-1.5, -1.0, -4.0])
RW, RL = torch.tensor([-1.2, -2.5, -2.0]), torch.tensor([-1.1, -1.3, -3.5])
LW, LL = torch.tensor([3, 5, 2]), torch.tensor([4, 2, 6])


def test_a_mixture_is_the_weighted_sum_of_its_terms():
    args = (PW, PL, RW, RL, LW, LL)
    got = compute("0.8*sigmoid+0.2*bco_pair+sft", *args, beta=0.3)
    expected = (0.8 * compute("sigmoid", *args, beta=0.3)
                + 0.2 * compute("bco_pair", *args, beta=0.3)
                + compute_unpaired("sft", PW, None, lengths=LW))
    assert torch.allclose(got, expected, atol=1e-7)
    # hand value of pair 0: sigmoid −log σ(0.3·(0.2 + 0.4)); bco_pair −log σ(0.06) − log σ(0.12);
    # sft: the batch token mean −(−1 − 2 − 3.5) / (3 + 5 + 2)
    import math

    ls = lambda x: -math.log1p(math.exp(-x))  # noqa: E731
    hand = 0.8 * -ls(0.18) + 0.2 * (-ls(0.3 * 0.2) - ls(-0.3 * -0.4)) + 6.5 / 10
    assert float(got[0]) == pytest.approx(hand, abs=1e-6)
    # the comma form with weights is the same mixture, under one canonical name
    assert mixture_name("sigmoid,bco_pair,sft", [0.8, 0.2, 1.0]) == \
        "0.8*sigmoid+0.2*bco_pair+1*sft" == get("0.8*sigmoid+0.2*bco_pair+sft").name
    assert get("dpo,sft").name == "1*sigmoid+1*sft"  # aliases resolve
    # weights are kept exactly, not rounded in the name the run trains by
    assert get("0.1234567*sigmoid+sft").name == "0.1234567*sigmoid+1*sft"
    assert get("sigmoid,ipo").needs_reference and get("simpo,sft").shape == "pairwise"


def test_mixtures_that_cannot_work_are_refused():
    for text, weights, message in (
            ("sigmoid,kto", None, "mixes data shapes"),
            ("sigmoid,sigmoid", None, "given twice"),
            ("sigmoid,ipo", [1.0], "2 terms but --objective-weights 1"),
            ("0*sigmoid+ipo", None, "must be a finite number > 0"),
            ("sigmoid,nope", None, "unknown objective 'nope'"),
            ("sigmoid", [1.0], "needs several objectives")):
        with pytest.raises(ValueError, match=message):
            get(mixture_name(text, weights))
    with pytest.raises(ValueError, match="bco_pair's running statistics are not available"):
        compute("sigmoid,bco_pair", PW, PL, RW, RL, reward_shift="running_mean")
    with pytest.raises(ValueError, match="unknown hyperparameter or input 'ld_alpha'"):
        compute("sigmoid,ipo", PW, PL, RW, RL, LW, LL, ld_alpha=0.5)  # no modifiers inside
