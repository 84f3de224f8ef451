"""MRPO: the combined reference by hand on asymmetric pairs (CTRO's clipping band, ARWC's
weights), the identities (one reference or identical ones: DPO; the main one's weight 1: DPO
against it), the Jensen bound under the geometric mixture, and its refusal without further
references."""

import math

import pytest
import torch

from prefalign.objectives import compute
from prefalign.objectives.multi_reference import combined_reference

PW, PL = [-4.0, -6.0], [-5.0, -5.5]
# main reference, then two further ones, per pair (chosen; rejected)
RW = [[-4.5, -4.0, -9.0], [-6.5, -6.4, -6.0]]
RL = [[-5.2, -6.0, -5.0], [-5.0, -4.0, -5.3]]


def t(values):
    return torch.tensor(values, dtype=torch.float64)


def _hand_reference(chosen, rejected, eta, adaptive, weight):
    """The combined reference of one pair, in plain Python."""
    r = len(chosen)
    if weight is None:
        gaps = [abs(c - x) for c, x in zip(chosen, rejected)]
        alpha = [g / sum(gaps) for g in gaps]
    else:
        alpha = [weight] + [(1 - weight) / (r - 1)] * (r - 1)
    if adaptive:
        b_w, b_l = abs(sum(chosen) / r), abs(sum(rejected) / r)
        eta_w, eta_l = eta * b_w / (b_w + b_l), eta * b_l / (b_w + b_l)
    else:
        eta_w = eta_l = eta

    def one(logps, band):
        main = logps[0]
        low, high = main * (1 + band), main * (1 - band)
        clipped = [main] + [min(max(x, low), high) for x in logps[1:]]
        return -math.log(sum(a * math.exp(-x) for a, x in zip(alpha, clipped)))

    return one(chosen, eta_w), one(rejected, eta_l)


def _mrpo(beta=0.5, **kw):
    return compute("mrpo", t(PW), t(PL), t([r[0] for r in RW]), t([r[0] for r in RL]),
                   beta=beta, ref_extra_chosen_logps=t([r[1:] for r in RW]),
                   ref_extra_rejected_logps=t([r[1:] for r in RL]), **kw)


@pytest.mark.parametrize("adaptive,weight", [(True, None), (False, None), (True, 0.6)])
def test_mrpo_against_hand_values(adaptive, weight):
    beta, eta = 0.5, 0.1
    expected = []
    for pw, pl, rw, rl in zip(PW, PL, RW, RL):
        ref_w, ref_l = _hand_reference(rw, rl, eta, adaptive, weight)
        z = beta * ((pw - ref_w) - (pl - ref_l))
        expected.append(math.log1p(math.exp(-z)))
    got = _mrpo(beta, mrpo_eta=eta, mrpo_adaptive_eta=adaptive, mrpo_ref_weight=weight)
    assert got.tolist() == pytest.approx(expected, abs=1e-12)


def test_the_clipping_band_and_the_weights_by_hand():
    # pair 0, chosen: main −4.5; references −4.0 and −9.0; non-adaptive η = 0.1 keeps them in
    # [−4.95, −4.05]: −4.0 → −4.05, −9.0 → −4.95. Weights 0.6 / 0.2 / 0.2.
    w, _ = combined_reference(t([RW[0]]), t([RL[0]]), eta=0.1, adaptive_eta=False,
                              ref_weight=0.6)
    hand = -math.log(0.6 * math.exp(4.5) + 0.2 * math.exp(4.05) + 0.2 * math.exp(4.95))
    assert float(w[0]) == pytest.approx(hand, abs=1e-12)
    # ARWC: the gaps |l_w − l_l| of pair 0 are 0.7, 2.0, 4.0
    from prefalign.objectives.multi_reference import reference_weights
    alpha = reference_weights(t([RW[0]]), t([RL[0]]), None)
    assert alpha[0].tolist() == pytest.approx([0.7 / 6.7, 2.0 / 6.7, 4.0 / 6.7], abs=1e-12)


def test_identities_with_dpo():
    main_w, main_l = t([r[0] for r in RW]), t([r[0] for r in RL])
    dpo = compute("sigmoid", t(PW), t(PL), main_w, main_l, beta=0.5)
    # identical further references: the combined reference is the main one
    same = compute("mrpo", t(PW), t(PL), main_w, main_l, beta=0.5,
                   ref_extra_chosen_logps=torch.stack([main_w, main_w], 1),
                   ref_extra_rejected_logps=torch.stack([main_l, main_l], 1))
    assert torch.allclose(same, dpo, atol=1e-12)
    # the main reference at weight 1: DPO against it, whatever the others say
    assert torch.allclose(_mrpo(0.5, mrpo_ref_weight=1.0), dpo, atol=1e-12)
    # no clipping, and a further reference with all the weight: DPO against that one
    only = compute("mrpo", t(PW), t(PL), main_w, main_l, beta=0.5, mrpo_eta=1.0,
                   mrpo_adaptive_eta=False, mrpo_ref_weight=0.0,
                   ref_extra_chosen_logps=t([[-4.2], [-6.1]]),
                   ref_extra_rejected_logps=t([[-5.0], [-5.4]]))
    assert torch.allclose(only, compute("sigmoid", t(PW), t(PL), t([-4.2, -6.1]),
                                        t([-5.0, -5.4]), beta=0.5), atol=1e-12)


def test_the_combined_reference_lies_below_the_geometric_mixture():
    torch.manual_seed(0)
    chosen, rejected = -torch.rand(64, 3, dtype=torch.float64) * 10, -torch.rand(64, 3, dtype=torch.float64) * 10
    w, _ = combined_reference(chosen, rejected, eta=1.0, adaptive_eta=False, ref_weight=0.5)
    alpha = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    # η = 1 makes the band [2·l_0, 0]: clip first, then compare with the same clipped values
    from prefalign.objectives.multi_reference import clip_to_main
    clipped = clip_to_main(chosen, torch.ones(64, dtype=torch.float64))
    assert bool(((clipped * alpha).sum(1) >= w - 1e-12).all())


def test_refused_without_further_references():
    with pytest.raises(ValueError, match="ref_extra_chosen_logps"):
        compute("mrpo", t(PW), t(PL), t([r[0] for r in RW]), t([r[0] for r in RL]), beta=0.5)
