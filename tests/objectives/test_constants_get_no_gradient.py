"""Quantities the objectives document as constants of the loss carry no gradient.

Running statistics (BCO's δ, β-DPO's M_0), ODPO's offset, KTO's reference point z and β-DPO's
batch β are detached: when the caller passes them as tensors that require grad they get none,
and where the objective computes them from this batch (BCO's batch-mean δ) the gradient with
respect to the log-probs is the hand-derived one with that quantity held fixed.
"""

import math

import torch

from prefalign.objectives import beta_dpo_selection, compute, compute_unpaired, kto_reference_point

from .hand import close, sig, t

# two pairs: ρ_w = [0.5, -0.2], ρ_l = [-0.3, 0.6]; |y_w| = [3, 2], |y_l| = [5, 4]
PW, PL, RW, RL = (-3.0, -2.0), (-4.3, -5.4), (-3.5, -1.8), (-4.0, -6.0)
RHO_W, RHO_L = [0.5, -0.2], [-0.3, 0.6]
LENS = dict(chosen_lengths=torch.tensor([3, 2]), rejected_lengths=torch.tensor([5, 4]))


def _leaves():
    return t(*PW).requires_grad_(), t(*PL).requires_grad_()


def test_bco_pair_batch_mean_shift_is_held_fixed_in_the_gradient():
    """reward_shift='running_mean' without a trainer: δ is this batch's mean of β·s_w, β·s_l,
    detached, so ∂/∂π_w = −β·σ(−(βρ_w − δ)) and ∂/∂π_l = β·σ(βρ_l − δ)."""
    beta = 3.0
    rho_w, rho_l = [0.5, -0.2, 0.7], [-0.3, 0.6, 0.9]
    pw, pl = t(-3.0, -2.0, -1.0).requires_grad_(), t(-4.3, -5.4, -2.0).requires_grad_()
    compute("bco_pair", pw, pl, t(-3.5, -1.8, -1.7), t(-4.0, -6.0, -2.9), beta=beta,
            reward_shift="running_mean").sum().backward()
    delta = beta * sum(rho_w + rho_l) / 6
    gw = [-beta * sig(-(beta * r - delta)) for r in rho_w]
    gl = [beta * sig(beta * r - delta) for r in rho_l]
    assert abs(sum(gw) + sum(gl)) > 0.1  # a gradient through δ would change these
    close(pw.grad, gw)
    close(pl.grad, gl)


def test_bco_pair_given_delta_gets_no_gradient():
    """A delta= passed to bco_pair is used as given, as a constant."""
    beta = 0.4
    pw, pl = _leaves()
    delta = torch.tensor(0.25, dtype=torch.float64, requires_grad=True)
    compute("bco_pair", pw, pl, t(*RW), t(*RL), beta=beta, delta=delta).sum().backward()
    assert delta.grad is None
    close(pw.grad, [-beta * sig(-(beta * r - 0.25)) for r in RHO_W])


def test_bco_batch_mean_shift_is_held_fixed_in_the_gradient():
    """Unpaired BCO without delta=: δ = mean of this batch's β·ρ, detached, so the gradient is
    −λ_D·β·σ(−(r − δ)) for desirable and λ_U·β·σ(r − δ) for undesirable examples."""
    beta, wd, wu = 0.5, 1.5, 0.7
    rho = [0.4, -1.0, 0.3]
    p = t(-1.0, -2.0, -2.7).requires_grad_()
    compute_unpaired("bco", p, torch.tensor([True, False, True]), t(-1.4, -1.0, -3.0), beta=beta,
                     desirable_weight=wd, undesirable_weight=wu).sum().backward()
    delta = beta * sum(rho) / 3
    r = [beta * x for x in rho]
    close(p.grad, [-wd * beta * sig(-(r[0] - delta)), wu * beta * sig(r[1] - delta), -wd * beta * sig(-(r[2] - delta))])


def test_bco_given_delta_gets_no_gradient():
    """Unpaired BCO's delta= (e.g. a RunningMoments mean) is a constant of the loss."""
    delta = torch.tensor(-0.1, dtype=torch.float64, requires_grad=True)
    p = t(-1.0, -2.0).requires_grad_()
    compute_unpaired("bco", p, torch.tensor([True, False]), t(-1.4, -1.0), beta=0.5, delta=delta).sum().backward()
    assert delta.grad is None
    close(p.grad, [-0.5 * sig(-(0.2 + 0.1)), 0.5 * sig(-0.5 + 0.1)])


def test_odpo_offset_is_a_constant():
    """ODPO's offset α·f(margin) is subtracted as a constant: a margin tensor that requires grad
    gets none, and the gradient on the log-probs is DPO's at the shifted logit."""
    beta, scale = 0.3, 0.8
    margin = t(1.5, 0.2).requires_grad_()
    pw, pl = _leaves()
    compute("odpo", pw, pl, t(*RW), t(*RL), beta=beta, margin=margin, offset_scale=scale).sum().backward()
    assert margin.grad is None
    z = [beta * (w - lo) - scale * math.log1p(m) for w, lo, m in zip(RHO_W, RHO_L, (1.5, 0.2))]
    close(pw.grad, [-beta * sig(-x) for x in z])
    close(pl.grad, [beta * sig(-x) for x in z])


def test_kto_given_reference_point_gets_no_gradient():
    """KTO's z given as kl= is clamped and detached, through compute_unpaired and the helper."""
    kl = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    z = kto_reference_point(kl=kl)
    assert not z.requires_grad and z.item() == 0.3
    p = t(-3.0, -3.0).requires_grad_()
    compute_unpaired("kto", p, torch.tensor([True, False]), t(-3.2, -3.5), kl=kl, beta=0.1).sum().backward()
    assert kl.grad is None
    # desirable: 1 − σ(β(ρ − z)), undesirable: 1 − σ(β(z − ρ)); ρ = [0.2, 0.5]
    g = lambda x: sig(x) * (1 - sig(x))  # noqa: E731
    close(p.grad, [-0.1 * g(0.1 * (0.2 - 0.3)), 0.1 * g(0.1 * (0.3 - 0.5))])


def test_beta_dpo_batch_beta_is_detached():
    """β-DPO's β_b is a constant of the loss: a gap_mean tensor that requires grad gets none, and
    the selection helper's β_b carries no gradient from the gaps."""
    gm = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    pw, pl = _leaves()
    compute("beta_dpo", pw, pl, t(*RW), t(*RL), beta=0.2, beta_dpo_alpha=0.5, beta_dpo_filter_ratio=0.0,
            gap_mean=gm, gap_std=1.0).sum().backward()
    assert gm.grad is None
    h = [w - lo for w, lo in zip(RHO_W, RHO_L)]  # [0.8, -0.8]
    beta_b = 0.2 * (1 + 0.5 * (sum(h) / 2 - 0.1))
    close(pw.grad, [-beta_b * sig(-beta_b * x) for x in h])
    gap = t(0.8, -0.3, 1.2).requires_grad_()
    beta_b, keep = beta_dpo_selection(gap, beta=0.2, alpha=0.5, filter_ratio=0.0)
    assert not beta_b.requires_grad and keep.all()
    close(beta_b, 0.2 * (1 + 0.5 * 0.0))
