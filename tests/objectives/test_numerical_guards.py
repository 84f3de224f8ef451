"""The numerical guards of the f-divergence scores and of ORPO's log-odds, by hand.

* α-divergence (TRL convention) uses the limit s = ρ only within 1e-6 of α = 1; just outside
  it the exact score e^{(α−1)ρ}/(α−1) is used, whose constant 1/(α−1) shows where a score is
  used on its own (SPPO). The paper's convention likewise uses ρ only for α below 1e-6: at
  α = 1e-6 exactly it is already (1 − e^{−αρ})/α.
* The exponent is clamped at 80 (11 in float16): beyond it the score stays at the clamp's.
* ORPO's log-odds clamp ā at −1e-6, so a chosen response with p = 1 gives a finite loss.
"""

import math

import pytest
import torch

from prefalign.objectives import compute

from .hand import close, logsig, t

# two pairs: ρ_w = [0.5, -0.2], ρ_l = [-0.3, 0.6]
PW, PL, RW, RL = t(-3.0, -2.0), t(-4.3, -5.4), t(-3.5, -1.8), t(-4.0, -6.0)
RHO_W, RHO_L = [0.5, -0.2], [-0.3, 0.6]
BETA = 0.1


def _sppo(s, rho_w=RHO_W, rho_l=RHO_L):
    half = 0.5 / BETA
    return [(s(w) - half) ** 2 + (s(lo) + half) ** 2 for w, lo in zip(rho_w, rho_l)]


def _trl(a):
    return lambda r: math.exp((a - 1.0) * r) / (a - 1.0)


def _paper(a):
    return lambda r: -math.expm1(-a * r) / a


def _run(pw=PW, pl=PL, rw=RW, rl=RL, name="sppo_hard", **kw):
    return compute(name, pw, pl, rw, rl, beta=BETA, f_divergence_type="alpha_divergence", **kw)


@pytest.mark.parametrize("a,limit", [(1.0, True), (1.0 - 5e-7, True), (1.0 - 1.5e-6, False), (0.999, False)])
def test_trl_alpha_uses_the_limit_only_within_1e_6_of_one(a, limit):
    out = _run(f_alpha_divergence_coef=a)
    close(out, _sppo((lambda r: r) if limit else _trl(a)), 1e-10)


@pytest.mark.parametrize("a,limit", [(0.0, True), (5e-7, True), (1e-6, False), (1.5e-6, False), (0.01, False)])
def test_paper_alpha_uses_the_limit_only_below_1e_6(a, limit):
    out = _run(f_alpha_divergence_coef=a, f_alpha_convention="paper")
    expected = _sppo((lambda r: r) if limit else _paper(a))
    close(out, expected, 1e-12)
    if not limit:  # the exact score differs from ρ by about αρ²/2, which shows at this tolerance
        assert not torch.allclose(out, torch.tensor(_sppo(lambda r: r), dtype=torch.float64), atol=1e-12, rtol=0)


def test_float16_loss_is_finite_for_every_alpha_and_log_ratio():
    h = lambda *v: torch.tensor(v, dtype=torch.float16)  # noqa: E731
    for convention in ("trl", "paper"):
        for a in (0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0):
            for rho in (-60000.0, -300.0, -30.0, 0.0, 30.0, 300.0, 60000.0):
                out = _run(h(rho), h(rho / 2 - 1), h(0.0), h(0.0), name="sigmoid",
                           f_alpha_divergence_coef=a, f_alpha_convention=convention)
                assert torch.isfinite(out).all(), (convention, a, rho, out)


def test_float32_scores_stay_finite_near_the_limit_alpha():
    """α = 1 − 2e-6 (TRL's convention): s = e^{(α−1)ρ} / (α−1) with ρ_l = −4e7 would be
    e^{80} / 2e-6 > float32's max under a fixed clamp at 80; the clamp follows the divisor."""
    f = lambda *v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    out = _run(f(-10.0), f(-4e7), f(0.0), f(0.0), name="sigmoid", f_alpha_divergence_coef=1 - 2e-6)
    assert torch.isfinite(out).all()


def test_exponent_is_clamped_at_80_in_float64():
    """ρ_l = −200 at α = 0.5: the exponent (α−1)ρ = 100 (TRL) or −αρ = 100 (paper) is cut to 80."""
    pl, rl = t(-204.3, -5.4), t(-4.3, -6.0)  # ρ_l = [-200, 0.6]
    rho_l = [-200.0, 0.6]
    trl = _run(pl=pl, rl=rl, f_alpha_divergence_coef=0.5)
    s = _trl(0.5)
    close(trl, _sppo(lambda r: math.exp(80.0) / -0.5 if r == -200.0 else s(r), rho_l=rho_l), 1e-10)
    paper = _run(pl=pl, rl=rl, f_alpha_divergence_coef=0.5, f_alpha_convention="paper")
    s = _paper(0.5)
    close(paper, _sppo(lambda r: -math.expm1(80.0) / 0.5 if r == -200.0 else s(r), rho_l=rho_l), 1e-10)


@pytest.mark.parametrize("a,convention", [(0.05, "trl"), (0.95, "paper"), (0.5, "trl"),
                                          (0.5, "paper")])
def test_float16_scores_stay_finite_at_every_alpha(a, convention):
    """float16 log-ratios ρ_w = −25, ρ_l = −30 put both exponents past what float16 holds once
    divided by the small divisor (|α − 1| or α): both scores stop at the same finite clamp value,
    so the DPO margin is 0 and the loss log 2 (a fixed clamp at 11 gave −inf scores and a NaN
    loss for the default α = 0.5: e^11 / 0.5 > 65504)."""
    h = lambda *v: torch.tensor(v, dtype=torch.float16)  # noqa: E731
    out = _run(h(-25.0), h(-30.0), h(0.0), h(0.0), name="sigmoid", f_alpha_divergence_coef=a,
               f_alpha_convention=convention)
    assert out.dtype == torch.float16
    assert abs(out.item() - math.log(2.0)) < 1e-3
    # float32 does not clamp these (exponents 23.75 and 28.5 < 80): the margin is huge, loss ≈ 0
    f = _run(t(-25.0).float(), t(-30.0).float(), t(0.0).float(), t(0.0).float(), name="sigmoid",
             f_alpha_divergence_coef=a, f_alpha_convention=convention)
    assert f.item() < 1e-6


def _log_odds(a):
    return a - math.log(-math.expm1(a))


def test_orpo_log_odds_of_a_certain_chosen_response_is_finite():
    """π_w = 0 (p = 1): ā is clamped at −1e-6, so the log-odds are finite (≈ 13.8) and the loss is
    the hand value; any ā in (−1e-6, 0] gives the same."""
    beta, ll = 0.5, 4
    pl = -4e-3  # ā_l = -1e-3
    expected = -0.0 - beta * logsig(_log_odds(-1e-6) - _log_odds(pl / ll))
    for pw in (0.0, -1e-7 * 3):
        out = compute("orpo", t(pw), t(pl), beta=beta, chosen_lengths=torch.tensor([3]),
                      rejected_lengths=torch.tensor([ll]))
        close(out, [expected + (-pw / 3)], 1e-12)
