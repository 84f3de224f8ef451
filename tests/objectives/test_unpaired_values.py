"""KTO, APO-zero unpaired, BCO, NPO and SFT against their formulas evaluated by hand."""

import math

import pytest
import torch

from prefalign.objectives import RunningMoments, compute, compute_unpaired

from .hand import close, logsig, sig, t

# ρ = [0.5, -0.3]; labels: desirable, undesirable
POLICY, REF = t(-2.0, -3.3), t(-2.5, -3.0)
LABELS = torch.tensor([True, False])


def test_kto_with_kl_estimated_from_mismatched_pairs():
    beta, wd, wu = 0.5, 1.5, 0.7
    z = ((-3.0 + 3.2) + (-4.0 + 4.4)) / 2  # 0.3
    out = compute_unpaired(
        "kto", POLICY, LABELS, REF, kl_logps=t(-3.0, -4.0), ref_kl_logps=t(-3.2, -4.4),
        beta=beta, desirable_weight=wd, undesirable_weight=wu,
    )
    close(out, [wd * (1 - sig(beta * (0.5 - z))), wu * (1 - sig(beta * (z - -0.3)))])


def test_kto_with_explicit_kl_scalar_equals_estimated():
    a = compute_unpaired("kto", POLICY, LABELS, REF, kl_logps=t(-3.0, -4.0), ref_kl_logps=t(-3.2, -4.4))
    b = compute_unpaired("kto", POLICY, LABELS, REF, kl=torch.tensor(0.3, dtype=torch.float64))
    close(a, b.tolist())


def test_kto_reference_point_is_clamped_at_zero():
    out = compute_unpaired("kto", POLICY, LABELS, REF, kl=-2.0, beta=0.5)
    close(out, [1 - sig(0.5 * 0.5), 1 - sig(0.5 * 0.3)])


def test_apo_zero_unpaired():
    out = compute_unpaired("apo_zero_unpaired", POLICY, LABELS, REF, beta=0.5)
    close(out, [1 - sig(0.25), sig(-0.15)])


def test_bco_with_explicit_delta():
    beta, delta = 0.5, 0.05
    out = compute_unpaired("bco", POLICY, LABELS, REF, beta=beta, delta=delta)
    close(out, [-logsig(0.25 - delta), -logsig(-(-0.15 - delta))])


def test_bco_default_delta_is_batch_mean_reward():
    beta = 0.5
    d = (0.25 + -0.15) / 2
    close(compute_unpaired("bco", POLICY, LABELS, REF, beta=beta), [-logsig(0.25 - d), -logsig(-(-0.15 - d))])


def test_bco_with_running_mean_delta():
    rm = RunningMoments()
    rm.update(t(0.1, 0.3))
    rm.update(t(0.5))
    assert rm.mean == pytest.approx(0.3)
    out = compute_unpaired("bco", POLICY, LABELS, REF, beta=0.5, delta=rm.mean)
    close(out, [-logsig(0.25 - 0.3), -logsig(-(-0.15 - 0.3))])


def test_npo_is_two_over_beta_softplus():
    beta = 0.2
    rho = [0.5, -0.3]
    out = compute_unpaired("npo", POLICY, None, REF, beta=beta)
    close(out, [(2 / beta) * math.log(1 + math.exp(beta * r)) for r in rho])
    close(compute_unpaired("npo", POLICY, torch.tensor([False, False]), REF, beta=beta), out.tolist())


def test_sft_batch_reduction_is_trl_token_mean():
    out = compute_unpaired("sft", t(-4.0, -9.0), None, lengths=torch.tensor([2, 3]))
    close(out, [13.0 / 5, 13.0 / 5])


def test_sft_example_reduction():
    out = compute_unpaired("sft", t(-4.0, -9.0), None, lengths=torch.tensor([2, 3]), nll_reduction="example")
    close(out, [2.0, 3.0])


def test_sft_through_pairwise_entry_uses_chosen():
    out = compute("sft", t(-4.0, -9.0), t(-100.0, -100.0), chosen_lengths=torch.tensor([2, 3]))
    close(out, [13.0 / 5, 13.0 / 5])


def test_sft_batch_token_mean_over_a_whole_step():
    """With the step's mean response length (the trainer's), each example's loss is −π/mean|y|:
    their mean over the step is Σ(−π)/Σ|y| however the step is split into batches."""
    import torch

    from prefalign.objectives import compute_unpaired

    logps = torch.tensor([-3.0, -8.0, -1.5], dtype=torch.float64)
    lengths = torch.tensor([2, 5, 1])
    got = compute_unpaired("sft", logps, None, lengths=lengths, step_mean_length=4.0)
    assert got.tolist() == [0.75, 2.0, 0.375]
    # split into two batches of one step of 3 examples (mean length 8/3): the mean is the step's
    step = 8 / 3
    parts = torch.cat([compute_unpaired("sft", logps[:1], None, lengths=lengths[:1], step_mean_length=step),
                       compute_unpaired("sft", logps[1:], None, lengths=lengths[1:], step_mean_length=step)])
    assert float(parts.mean()) == pytest.approx(12.5 / 8, rel=1e-12)
    assert compute_unpaired("sft", logps, None, lengths=lengths).tolist() == [12.5 / 8] * 3
