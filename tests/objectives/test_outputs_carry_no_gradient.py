"""What objectives hand back without a gradient: the weights of ObjectiveOutput.scaled and every
value batch_metrics logs (log-probs and TDPO's sequential KL included), while the losses keep theirs."""

import torch

from prefalign import objectives as O
from prefalign.objectives.metrics import reward_margin_values

from .hand import close, t


def test_scaled_multiplies_the_losses_without_a_gradient_through_the_weights():
    """scaled(w) gives losses·w; the loss gradient reaches the inputs, never the weights."""
    pw = t(-3.0, -5.5).requires_grad_()
    out = O.run("sigmoid", O.PairwiseBatch(pw, t(-4.0, -6.0), t(-3.5, -5.0), t(-4.5, -7.0)), {"beta": 0.5})
    w = t(0.25, 2.0).requires_grad_()
    scaled = out.scaled(w)
    close(scaled.losses, (out.losses.detach() * t(0.25, 2.0)).tolist())
    scaled.losses.sum().backward()
    assert w.grad is None
    assert pw.grad is not None and bool((pw.grad != 0).all())
    # float32 weights are applied in the losses' dtype
    assert out.scaled(torch.tensor([0.5, 0.5])).losses.dtype == torch.float64


def test_pairwise_batch_metrics_are_detached_even_for_log_probs_and_seq_kl_with_gradients():
    """batch_metrics logs plain values: no entry requires grad, even when the batch's log-probs and
    sequential KL do (they are the very tensors the loss is differentiated through)."""
    pw, pl = t(-3.0, -5.5).requires_grad_(), t(-4.0, -6.0).requires_grad_()
    kl_c, kl_r = t(0.1, 0.2).requires_grad_(), t(0.3, 0.05).requires_grad_()
    batch = O.PairwiseBatch(pw, pl, t(-3.5, -5.0), t(-4.5, -7.0), chosen_seq_kl=kl_c, rejected_seq_kl=kl_r)
    out = O.run("tdpo1", batch, {"beta": 0.5})
    assert out.losses.requires_grad
    m = O.batch_metrics(batch, out)
    assert {"logps/chosen", "logps/rejected", "kl/chosen", "kl/rejected", "rewards/margin"} <= set(m)
    for key, value in m.items():
        assert not value.requires_grad, key
    close(m["logps/chosen"], [-3.0, -5.5])
    close(m["logps/rejected"], [-4.0, -6.0])
    close(m["kl/chosen"], [0.1, 0.2])
    close(m["kl/rejected"], [0.3, 0.05])


def test_listwise_and_unpaired_batch_metrics_are_detached():
    """The listwise best/worst picks and the unpaired values carry no gradient either."""
    pol = t(-1.0, -2.0, -3.0).view(1, 3).requires_grad_()
    batch = O.ListwiseBatch(pol, t(-1.5, -1.0, -3.5).view(1, 3), t(0.5, 2.0, 1.0).view(1, 3), None,
                            torch.ones(1, 3, dtype=torch.bool))
    m = O.batch_metrics(batch, O.run("plackett_luce", batch, {}))
    assert not any(v.requires_grad for v in m.values())
    close(m["logps/chosen"], [-2.0])
    close(m["logps/rejected"], [-1.0])
    p = t(-2.0, -3.0).requires_grad_()
    ub = O.UnpairedBatch(p, torch.tensor([True, False]), t(-2.5, -2.0), torch.tensor([2, 4]), kl=t(0.0))
    m = O.batch_metrics(ub, O.run("kto", ub, {}))
    assert not any(v.requires_grad for v in m.values())


def test_reward_margin_values_detach_rewards_that_require_grad():
    """reward_margin_values returns detached values even when handed rewards with a gradient
    (e.g. β·ρ computed by the caller from the policy's log-probs)."""
    rc, rr = t(0.5, -0.1, 0.3).requires_grad_(), t(0.2, 0.4, 0.3).requires_grad_()
    v = reward_margin_values(rc, rr)
    for key, value in v.items():
        assert not value.requires_grad, key
    close(v["rewards/chosen"], [0.5, -0.1, 0.3])
    close(v["rewards/rejected"], [0.2, 0.4, 0.3])
    close(v["rewards/margin"], [0.3, -0.5, 0.0])
    close(v["rewards/accuracy"], [1.0, 0.0, 0.0])  # a tie is not a win
