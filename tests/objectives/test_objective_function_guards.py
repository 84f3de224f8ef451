"""The objective functions guard their own hyperparameter ranges, independent of the registry.

The registry checks every declared range before an objective runs; the functions repeat the
checks where a value at the bound would be meaningless (rDPO divides by 1 − 2ε; EXO takes
log ε and log(1 − ε); cDPO at ε = 1/2 weighs both labels the same; β-DPO with a filter ratio
of 1 would keep nothing). A caller of the entry's function itself (``get(name).fn``, which
presets reuse with other defaults) hits the same refusal at exactly the bound, while the
value just inside it runs.
"""

import math

import pytest
import torch

from prefalign.objectives import PairwiseBatch, get
from prefalign.objectives.modifiers import F_DIVERGENCE, LD_DPO
from prefalign.objectives.token_level import LD_INPUTS, LD_REF_INPUTS

from .hand import close, logsig, t

# ρ_w = 0.5, ρ_l = -0.3, h = 0.8 and ρ_w = -0.2, ρ_l = 0.6, h = -0.8
BATCH = PairwiseBatch(t(-3.0, -2.0), t(-4.3, -5.4), t(-3.5, -1.8), t(-4.0, -6.0), torch.tensor([3, 2]),
                      torch.tensor([5, 4]))
H = [0.8, -0.8]


def test_robust_refuses_flip_rate_one_half_and_runs_just_below():
    """rDPO's ε must be < 1/2 (at 1/2 the loss divides by zero)."""
    fn = get("robust").fn
    with pytest.raises(ValueError, match=r"label_smoothing \(flip rate ε\) must be in \[0, 0\.5\), got 0\.5"):
        fn(BATCH, beta=0.1, label_smoothing=0.5)
    eps, beta = 0.49, 0.3
    out = fn(BATCH, beta=beta, label_smoothing=eps)
    close(out.losses, [(-(1 - eps) * logsig(beta * h) + eps * logsig(-beta * h)) / (1 - 2 * eps) for h in H], 1e-9)


def test_exo_refuses_smoothing_one_and_runs_just_below():
    """EXO's ε must lie in (0, 1): at 1 the target's log(1 − ε) is −∞."""
    fn = get("exo_pair").fn
    with pytest.raises(ValueError, match=r"label_smoothing ε must be in \(0, 1\) for EXO.*got 1\.0"):
        fn(BATCH, beta=0.1, label_smoothing=1.0)
    with pytest.raises(ValueError, match=r"must be in \(0, 1\) for EXO.*got 0\.0"):
        fn(BATCH, beta=0.1, label_smoothing=0.0)
    eps, beta = 0.9, 0.5
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = [sig(beta * h) * (logsig(beta * h) - math.log1p(-eps)) + sig(-beta * h) * (logsig(-beta * h) - math.log(eps))
                for h in H]
    close(fn(BATCH, beta=beta, label_smoothing=eps).losses, expected)


def test_cdpo_refuses_smoothing_one_half():
    """cDPO's ε must be < 1/2: at 1/2 the smoothed target carries no preference."""
    with pytest.raises(ValueError, match=r"label_smoothing ε must be in \[0, 0\.5\), got 0\.5"):
        get("cdpo").fn(BATCH, beta=0.1, label_smoothing=0.5)


def test_beta_dpo_refuses_filter_ratio_one():
    """β-DPO's filter ratio must be < 1 (1 would filter out the whole batch)."""
    fn = get("beta_dpo").fn
    with pytest.raises(ValueError, match=r"beta_dpo_filter_ratio must be in \[0, 1\), got 1\.0"):
        fn(BATCH, beta=0.1, beta_dpo_alpha=0.6, beta_dpo_filter_ratio=1.0, beta_dpo_sampling="topk")


def test_f_divergence_modifier_is_active_exactly_off_reverse_kl():
    """The f-DPO modifier reports itself active for every divergence except reverse KL, which
    is also what an absent f_divergence_type means."""
    assert not F_DIVERGENCE.active({})
    assert not F_DIVERGENCE.active({"f_divergence_type": "reverse_kl"})
    for kind in ("forward_kl", "js_divergence", "alpha_divergence"):
        assert F_DIVERGENCE.active({"f_divergence_type": kind})


def test_ld_dpo_reads_the_reference_tokens_unless_told_not_to():
    """LD-DPO rebuilds the reference log-probs by default (paper, TRL >= 0.29), so without an
    ld_apply_to_reference setting it reads the reference's per-token inputs too."""
    entry = get("sigmoid")
    assert LD_DPO.reads(entry, {"ld_alpha": 0.5}) == LD_INPUTS | LD_REF_INPUTS
    assert LD_DPO.reads(entry, {"ld_alpha": 0.5, "ld_apply_to_reference": False}) == LD_INPUTS
    assert LD_DPO.reads(get("simpo"), {"ld_alpha": 0.5}) == LD_INPUTS  # no reference model
