"""SimPO, CPO, ORPO, ASFT against their formulas evaluated by hand."""

import math

import torch

from prefalign.objectives import compute

from .hand import LL, LW, PL, PW, close, logsig, t

LENS = dict(chosen_lengths=torch.tensor([LW]), rejected_lengths=torch.tensor([LL]))


def _log_odds(a: float) -> float:
    return a - math.log(1 - math.exp(a))


def test_simpo_uses_average_logp_margin_minus_gamma():
    z = 2.0 * (PW / LW - PL / LL) - 1.0
    close(compute("simpo", t(PW), t(PL), beta=2.0, simpo_gamma=1.0, **LENS), [-logsig(z)])


def test_simpo_label_smoothing():
    z = 2.0 * (PW / LW - PL / LL) - 0.5
    eps = 0.1
    out = compute("simpo", t(PW), t(PL), beta=2.0, simpo_gamma=0.5, label_smoothing=eps, **LENS)
    close(out, [-(1 - eps) * logsig(z) - eps * logsig(-z)])


def test_cpo_is_reference_free_dpo_plus_nll():
    close(compute("cpo", t(PW), t(PL), beta=0.1, cpo_alpha=0.5, **LENS), [-logsig(0.1 * (PW - PL)) + 0.5 * (-PW / LW)])


def test_orpo_is_nll_minus_lambda_log_sigmoid_log_odds_ratio():
    aw, al = PW / LW, PL / LL
    expected = -aw - 0.2 * logsig(_log_odds(aw) - _log_odds(al))
    close(compute("orpo", t(PW), t(PL), beta=0.2, **LENS), [expected])


def test_asft_log_odds_score_is_absolute_likelihood():
    aw, al = PW / LW, PL / LL
    lam = 0.3
    expected = -aw + lam * (-logsig(_log_odds(aw)) - logsig(-_log_odds(al)))
    close(compute("asft", t(PW), t(PL), beta=lam, **LENS), [expected])
    # σ(log odds) = p, so the alignment term is −log p_w − log(1 − p_l)
    same = -aw + lam * (-aw - math.log(1 - math.exp(al)))
    close(compute("asft", t(PW), t(PL), beta=lam, **LENS), [same])


def test_asft_avg_logp_score_variant():
    aw, al = PW / LW, PL / LL
    expected = -aw + 0.3 * (-logsig(aw) - logsig(-al))
    close(compute("asft", t(PW), t(PL), beta=0.3, asft_score="avg_logp", **LENS), [expected])


def test_reference_free_objectives_ignore_reference_arguments():
    a = compute("simpo", t(PW), t(PL), **LENS)
    b = compute("simpo", t(PW), t(PL), t(0.0), t(0.0), **LENS)
    close(a, b.tolist())
