"""Each pairwise objective against its formula evaluated by hand with `math`."""

import math

import pytest

from prefalign.objectives import compute

from .hand import close, logsig, pair, sig, t

BETA = 0.5  # βh = 0.5, βρ_w = 0.25, βρ_l = -0.25 on the shared pair


def test_dpo_matches_minus_log_sigmoid_of_beta_h():
    close(compute("sigmoid", *pair(), beta=BETA), [-logsig(0.5)])


def test_cdpo_is_label_smoothed_logistic():
    eps = 0.2
    close(compute("cdpo", *pair(), beta=BETA, label_smoothing=eps), [-(1 - eps) * logsig(0.5) - eps * logsig(-0.5)])


def test_robust_dpo_is_debiased_combination():
    eps = 0.2
    expected = (-(1 - eps) * logsig(0.5) + eps * logsig(-0.5)) / (1 - 2 * eps)
    close(compute("robust", *pair(), beta=BETA, label_smoothing=eps), [expected])


def test_ipo_trl_divides_scores_by_length():
    expected = (0.5 / 4 - (-0.5) / 5 - 1 / (2 * BETA)) ** 2
    close(compute("ipo", *pair(), beta=BETA), [expected])


def test_ipo_paper_variant_is_unnormalized():
    pw, pl, rw, rl, _, _ = pair()
    expected = (1.0 - 1 / (2 * 0.25)) ** 2
    close(compute("ipo", pw, pl, rw, rl, beta=0.25, ipo_normalize=False), [expected])


def test_hinge_is_max_zero_one_minus_beta_h():
    close(compute("hinge", *pair(), beta=BETA), [0.5])
    close(compute("slic", *pair(), beta=2.0), [0.0])


def test_exo_pair_is_reverse_kl_to_smoothed_label():
    eps = 1e-3
    z = 0.5
    expected = sig(z) * (logsig(z) - math.log(1 - eps)) + sig(-z) * (logsig(-z) - math.log(eps))
    close(compute("exo_pair", *pair(), beta=BETA, label_smoothing=eps), [expected])


def test_nca_pair_scores_each_reward():
    rw, rl = 0.25, -0.25
    close(compute("nca_pair", *pair(), beta=BETA), [-logsig(rw) - 0.5 * logsig(-rw) - 0.5 * logsig(-rl)])


def test_bco_pair_without_and_with_shift():
    close(compute("bco_pair", *pair(), beta=BETA), [-logsig(0.25) - logsig(0.25)])
    close(compute("bco_pair", *pair(), beta=BETA, delta=0.1), [-logsig(0.25 - 0.1) - logsig(-(-0.25 - 0.1))])


def test_sppo_hard_regresses_to_plus_minus_half_over_beta():
    close(compute("sppo_hard", *pair(), beta=BETA), [(0.5 - 1.0) ** 2 + (-0.5 + 1.0) ** 2])


def test_aot_sorts_margins_over_the_batch():
    # policy margins π_w − π_l = [2, -1], reference margins [1, 0.5]
    pw, pl = t(-3.0, -4.0), t(-5.0, -3.0)
    rw, rl = t(-4.0, -3.5), t(-5.0, -4.0)
    eps = 0.1
    deltas = [-1.0 - 0.5, 2.0 - 1.0]
    expected = [-(1 - eps) * logsig(BETA * d) - eps * logsig(-BETA * d) for d in deltas]
    close(compute("aot", pw, pl, rw, rl, beta=BETA, label_smoothing=eps), expected)


def test_aot_unpaired_sorts_chosen_and_rejected_log_ratios_separately():
    # ρ_w = [0.5, -0.2], ρ_l = [-0.5, 0.3]
    pw, rw = t(-1.0, -2.2), t(-1.5, -2.0)
    pl, rl = t(-3.5, -2.7), t(-3.0, -3.0)
    deltas = [-0.2 - (-0.5), 0.5 - 0.3]
    close(compute("aot_unpaired", pw, pl, rw, rl, beta=BETA), [-logsig(BETA * d) for d in deltas])


def test_apo_zero_and_apo_down():
    close(compute("apo_zero", *pair(), beta=BETA), [(1 - sig(0.25)) + sig(-0.25)])
    close(compute("apo_down", *pair(), beta=BETA), [sig(0.25) + (1 - sig(0.5))])


def test_discopop_blends_logistic_and_exponential():
    tau, z = 0.05, 0.5
    m = sig(z / tau)
    close(compute("discopop", *pair(), beta=BETA, discopop_tau=tau), [(1 - m) * -logsig(z) + m * math.exp(-z)])


def test_sigmoid_norm_uses_per_token_log_ratios():
    close(compute("ln_dpo", *pair(), beta=BETA), [-logsig(BETA * (0.5 / 4 - (-0.5) / 5))])


@pytest.mark.parametrize("fn,f", [("log1p", math.log1p), ("identity", lambda m: m)])
def test_odpo_subtracts_scaled_offset(fn, f):
    margin, scale = 2.0, 0.3
    out = compute("odpo", *pair(), beta=BETA, margin=t(margin), offset_scale=scale, offset_fn=fn)
    close(out, [-logsig(0.5 - scale * f(margin))])


def test_dpop_penalizes_chosen_below_reference():
    # π_w = -6 < ref_w = -5.5: penalty 0.5; h = (-0.5) - (-0.5) = 0
    out = compute("dpop", t(-6.0), t(-7.0), t(-5.5), t(-6.5), beta=BETA, dpop_lambda=2.0)
    close(out, [-logsig(BETA * (0.0 - 2.0 * 0.5))])
    # chosen above reference: no penalty, plain DPO
    close(compute("dpop", *pair(), beta=BETA, dpop_lambda=2.0), [-logsig(0.5)])


def test_rpo_adds_token_mean_nll_of_chosen():
    close(compute("rpo", *pair(), beta=BETA, rpo_alpha=0.5), [-logsig(0.5) + 0.5 * (5.0 / 4)])


def test_f_dpo_forward_kl_js_and_alpha_scores():
    # ρ_w = 0.5, ρ_l = -0.5
    fwd = -math.exp(-0.5) + math.exp(0.5)
    close(compute("sigmoid", *pair(), beta=BETA, f_divergence_type="forward_kl"), [-logsig(BETA * fwd)])
    js = logsig(0.5) - logsig(-0.5)
    close(compute("sigmoid", *pair(), beta=BETA, f_divergence_type="js_divergence"), [-logsig(BETA * js)])
    a = 0.3
    alpha = (math.exp((a - 1) * 0.5) - math.exp((a - 1) * -0.5)) / (a - 1)
    out = compute("f_dpo", *pair(), beta=BETA, f_divergence_type="alpha_divergence", f_alpha_divergence_coef=a)
    close(out, [-logsig(BETA * alpha)])


def test_beta_dpo_filters_outliers_and_rescales_beta():
    # gaps h = ρ_w − ρ_l = [0.0, 0.4, 0.6, 3.0]; threshold M0 = 0.5, σ = 1; keep 3 of 4.
    h = [0.0, 0.4, 0.6, 3.0]
    pw = t(*h)
    zeros = t(0.0, 0.0, 0.0, 0.0)
    beta0, alpha = 0.1, 0.6
    out = compute(
        "beta_dpo", pw, zeros, zeros, zeros, beta=beta0, beta_dpo_alpha=alpha, beta_dpo_filter_ratio=0.25,
        gap_mean=0.5, gap_std=1.0,
    )
    kept = [0.0, 0.4, 0.6]  # 3.0 is farthest from M0 and is filtered
    beta_b = beta0 * (1 + alpha * (sum(kept) / 3 - 0.5))
    expected = [4 / 3 * -logsig(beta_b * x) for x in kept] + [0.0]
    close(out, expected)


def test_tdpo1_and_tdpo2_subtract_sequential_kl_margin():
    kl_w, kl_l = 0.2, 0.7
    kw = dict(chosen_seq_kl=t(kl_w), rejected_seq_kl=t(kl_l))
    close(compute("tdpo1", *pair(), beta=BETA, **kw), [-logsig(BETA * (1.0 - (kl_l - kl_w)))])
    close(compute("tdpo2", *pair(), beta=BETA, tdpo_alpha=0.5, **kw), [-logsig(BETA * (1.0 - 0.5 * (kl_l - kl_w)))])
