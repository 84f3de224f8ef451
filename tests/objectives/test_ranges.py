"""Every numeric hyperparameter has a declared range, enforced by the functional entry points."""

import math

import pytest
import torch

from prefalign.objectives import available, compute, compute_listwise, compute_unpaired, get

t = lambda *v: torch.tensor(v, dtype=torch.float32)  # noqa: E731


def test_every_numeric_hyperparameter_declares_a_range():
    for o in available():
        for h in o.hyperparameters:
            if h.numeric:
                assert h.low is not None or h.high is not None, (o.name, h.name)
                if h.default is not None:
                    assert h.check(o.name, h.default) == h.default


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -2.0])
def test_beta_must_be_finite_and_positive_where_it_scales_the_reward(value):
    with pytest.raises(ValueError, match=r"'sigmoid'.*beta.*must be > 0"):
        compute("sigmoid", t(-1.0), t(-2.0), t(-1.0), t(-2.0), beta=value)
    with pytest.raises(ValueError, match=r"'kto'.*beta"):
        compute_unpaired("kto", t(-1.0), torch.tensor([True]), t(-1.0), kl=0.0, beta=value)
    with pytest.raises(ValueError, match=r"'plackett_luce'.*beta"):
        compute_listwise("plackett_luce", t(-1.0, -2.0)[None], t(-1.0, -2.0)[None],
                         scores=t(1.0, 0.0)[None], beta=value)


def test_orpo_weight_zero_is_allowed_but_not_negative():
    lens = dict(chosen_lengths=t(2.0), rejected_lengths=t(2.0))
    assert torch.isfinite(compute("orpo", t(-1.0), t(-2.0), beta=0.0, **lens)).all()
    with pytest.raises(ValueError, match=r"'orpo'.*beta=-1 is out of range.*>= 0"):
        compute("orpo", t(-1.0), t(-2.0), beta=-1.0, **lens)


@pytest.mark.parametrize("name,key,value,allowed", [
    ("cdpo", "label_smoothing", 0.5, r"in \[0, 0.5\)"),
    ("discopop", "discopop_tau", 0.0, "> 0"),
    ("dpop", "dpop_lambda", -1.0, ">= 0"),
    ("sigmoid", "ld_alpha", 1.5, r"in \[0, 1\]"),
    ("sigmoid", "f_alpha_divergence_coef", 2.0, r"in \[0, 1\]"),
    ("beta_dpo", "beta_dpo_filter_ratio", 1.0, r"in \[0, 1\)"),
])
def test_out_of_range_values_name_the_setting_and_its_range(name, key, value, allowed):
    entry = get(name)
    with pytest.raises(ValueError, match=rf"{name}.*{key}.*{allowed}"):
        entry.hyperparameter(key).check(name, value)


def test_text_is_coerced_by_the_declared_type():
    h = get("sigmoid").hyperparameter("beta")
    assert h.coerce("sigmoid", "1e-3") == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="beta must be a number > 0, got 'abc'"):
        h.coerce("sigmoid", "abc")
    assert get("sigmoid").hyperparameter("use_weighting").coerce("sigmoid", "true") is True
    assert get("sigmoid").hyperparameter("ld_alpha").coerce("sigmoid", "null") is None
    assert math.isclose(get("sigmoid").hyperparameter("ld_alpha").coerce("sigmoid", "0.5"), 0.5)
