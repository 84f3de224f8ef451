"""Gradient directions the papers rely on, checked with torch.autograd."""

import torch

from prefalign.objectives import compute, compute_unpaired

from .hand import t


def _grads(name, pw=-5.0, pl=-7.0, rw=-5.0, rl=-7.0, **kw):
    pw_, pl_ = t(pw).requires_grad_(), t(pl).requires_grad_()
    compute(name, pw_, pl_, t(rw), t(rl), chosen_lengths=torch.tensor([4]), rejected_lengths=torch.tensor([5]), **kw).sum().backward()
    return pw_.grad.item(), pl_.grad.item()


def test_dpo_gradient_raises_chosen_and_lowers_rejected():
    gw, gl = _grads("sigmoid")
    assert gw < 0 < gl


def test_simpo_gradient_raises_chosen_and_lowers_rejected():
    gw, gl = _grads("simpo")
    assert gw < 0 < gl


def test_ipo_gradient_raises_chosen_and_lowers_rejected_below_target_margin():
    for normalize in (True, False):
        gw, gl = _grads("ipo", ipo_normalize=normalize)
        assert gw < 0 < gl


def test_dpo_gradients_are_equal_and_opposite():
    gw, gl = _grads("sigmoid", pw=-4.0)
    assert abs(gw + gl) < 1e-12


def test_dpop_penalty_pushes_chosen_up_harder_when_below_reference():
    plain_w, _ = _grads("sigmoid", pw=-6.0, rw=-5.0)
    dpop_w, _ = _grads("dpop", pw=-6.0, rw=-5.0)
    assert dpop_w < plain_w < 0


def test_npo_gradient_only_lowers_the_negative():
    p = t(-3.0, -8.0).requires_grad_()
    ref = t(-3.5, -7.0).requires_grad_()
    compute_unpaired("npo", p, None, ref).sum().backward()
    assert (p.grad > 0).all()  # gradient descent lowers log π of the negatives
    # the reference is a constant of the loss only through ρ; the trainer never updates it,
    # but its gradient is exactly the opposite of the policy's (nothing else moves)
    assert torch.allclose(ref.grad, -p.grad)


def test_kto_pushes_desirable_up_and_undesirable_down():
    p = t(-3.0, -3.0).requires_grad_()
    labels = torch.tensor([True, False])
    compute_unpaired("kto", p, labels, t(-3.2, -3.2), kl=0.1).sum().backward()
    assert p.grad[0] < 0 < p.grad[1]


def test_kto_reference_point_gets_no_gradient():
    kl_logps = t(-3.0, -4.0).requires_grad_()
    p = t(-3.0, -3.0).requires_grad_()
    loss = compute_unpaired("kto", p, torch.tensor([True, False]), t(-3.2, -3.2), kl_logps=kl_logps, ref_kl_logps=t(-3.5, -4.5))
    loss.sum().backward()
    assert kl_logps.grad is None


def test_tdpo2_stops_gradient_through_chosen_kl_but_tdpo1_does_not():
    for name, expect_grad in (("tdpo1", True), ("tdpo2", False)):
        kl_w, kl_l = t(0.2).requires_grad_(), t(0.5).requires_grad_()
        compute(name, t(-5.0), t(-7.0), t(-5.0), t(-7.0), chosen_seq_kl=kl_w, rejected_seq_kl=kl_l).sum().backward()
        assert (kl_w.grad is not None and kl_w.grad.item() != 0) == expect_grad
        assert kl_l.grad.item() > 0  # the loss pushes the rejected response's KL down


def test_wpo_weights_carry_no_gradient():
    tok_c = torch.tensor([[-1.0, -2.0]], dtype=torch.float64, requires_grad=True)
    tok_r = torch.tensor([[-1.5, -0.5]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True]])
    sq = torch.tensor([[-0.5, -0.5]], dtype=torch.float64)
    loss = compute("wpo", t(-3.0), t(-2.0), t(-3.0), t(-2.0), chosen_token_logps=tok_c, rejected_token_logps=tok_r,
                   chosen_token_mask=mask, rejected_token_mask=mask, chosen_token_log_sumsq=sq, rejected_token_log_sumsq=sq)
    assert not loss.requires_grad


def test_beta_dpo_filtered_examples_get_no_gradient():
    pw = t(0.0, 0.4, 0.6, 3.0).requires_grad_()
    z = torch.zeros(4, dtype=torch.float64)
    compute("beta_dpo", pw, z, z, z, beta_dpo_filter_ratio=0.25, gap_mean=0.5, gap_std=1.0).sum().backward()
    assert pw.grad[3] == 0 and (pw.grad[:3] < 0).all()


def test_ld_dpo_gradient_on_tail_tokens_is_scaled_by_alpha():
    c = torch.tensor([[-1.0, -2.0, -3.0]], dtype=torch.float64, requires_grad=True)
    r = torch.tensor([[-1.0, -1.0, 0.0]], dtype=torch.float64)
    cm, rm = torch.tensor([[True, True, True]]), torch.tensor([[True, True, False]])
    compute("ld_dpo", t(0.0), t(0.0), t(0.0), t(0.0), ld_alpha=0.25, ld_apply_to_reference=False,
            chosen_token_logps=c, rejected_token_logps=r, chosen_token_mask=cm, rejected_token_mask=rm).sum().backward()
    assert torch.allclose(c.grad[0, 2], 0.25 * c.grad[0, 0])
    assert torch.allclose(c.grad[0, 0], c.grad[0, 1])
