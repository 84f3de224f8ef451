"""Identities the papers state (each can fail if an objective is wrong)."""

import math

import pytest
import torch

from prefalign.objectives import compute, compute_listwise, ld_sequence_logps

torch.manual_seed(0)
B = 6
PW = torch.randn(B, dtype=torch.float64) * 3 - 20
PL = torch.randn(B, dtype=torch.float64) * 3 - 22
RW = torch.randn(B, dtype=torch.float64) * 3 - 21
RL = torch.randn(B, dtype=torch.float64) * 3 - 21
ARGS = (PW, PL, RW, RL)


def dpo(**kw):
    return compute("sigmoid", *ARGS, **kw)


def assert_same(a, b, tol=1e-10):
    assert torch.allclose(a, b, atol=tol, rtol=tol), (a, b)


def test_dpo_at_policy_equal_reference_is_ln2():
    out = compute("dpo", PW, PL, PW.clone(), PL.clone(), beta=0.3)
    assert_same(out, torch.full((B,), math.log(2.0), dtype=torch.float64))


def test_robust_dpo_with_zero_flip_rate_is_dpo():
    assert_same(compute("robust", *ARGS, beta=0.2, label_smoothing=0.0), dpo(beta=0.2))


def test_cdpo_with_zero_smoothing_is_dpo():
    assert_same(compute("cdpo", *ARGS, beta=0.2, label_smoothing=0.0), dpo(beta=0.2))


def test_robust_and_cdpo_differ_from_dpo_when_smoothing_is_positive():
    assert not torch.allclose(compute("robust", *ARGS, label_smoothing=0.1), dpo())
    assert not torch.allclose(compute("cdpo", *ARGS, label_smoothing=0.1), dpo())


def test_odpo_with_zero_margin_is_dpo():
    assert_same(compute("odpo", *ARGS, beta=0.2, margin=torch.zeros(B, dtype=torch.float64)), dpo(beta=0.2))


def test_odpo_with_zero_offset_scale_is_dpo():
    margin = torch.rand(B, dtype=torch.float64) * 5
    assert_same(compute("odpo", *ARGS, beta=0.2, margin=margin, offset_scale=0.0), dpo(beta=0.2))


def test_beta_dpo_with_fixed_beta_and_no_filtering_is_dpo():
    out = compute("beta_dpo", *ARGS, beta=0.2, beta_dpo_alpha=0.0, beta_dpo_filter_ratio=0.0)
    assert_same(out, dpo(beta=0.2))


def test_beta_dpo_mean_over_kept_examples_matches_paper_reduction():
    out = compute("beta_dpo", *ARGS, beta=0.2, beta_dpo_alpha=0.0, beta_dpo_filter_ratio=0.5)
    kept = out != 0
    assert int(kept.sum()) == B // 2
    assert_same(out.mean(), dpo(beta=0.2)[kept].mean())


def test_f_dpo_reverse_kl_is_dpo():
    assert_same(compute("f_dpo", *ARGS, beta=0.2, f_divergence_type="reverse_kl"), dpo(beta=0.2))


def test_f_dpo_alpha_divergence_tends_to_reverse_kl_as_alpha_goes_to_one():
    near = compute("sigmoid", *ARGS, beta=0.2, f_divergence_type="alpha_divergence", f_alpha_divergence_coef=1 - 1e-5)
    assert_same(near, dpo(beta=0.2), tol=1e-3)
    at_one = compute("sigmoid", *ARGS, beta=0.2, f_divergence_type="alpha_divergence", f_alpha_divergence_coef=1.0)
    assert_same(at_one, dpo(beta=0.2))
    far = compute("sigmoid", *ARGS, beta=0.2, f_divergence_type="alpha_divergence", f_alpha_divergence_coef=0.5)
    assert not torch.allclose(far, dpo(beta=0.2), atol=1e-3)


def test_plackett_luce_with_two_items_is_dpo():
    pol = torch.stack([PW, PL], dim=1)
    ref = torch.stack([RW, RL], dim=1)
    scores = torch.tensor([[1.0, 0.0]] * B, dtype=torch.float64)
    assert_same(compute_listwise("plackett_luce", pol, ref, scores=scores, beta=0.2), dpo(beta=0.2))
    # order comes from the scores, not the column
    flipped = compute_listwise("plackett_luce", pol.flip(1), ref.flip(1), scores=scores.flip(1), beta=0.2)
    assert_same(flipped, dpo(beta=0.2))


def test_lipo_lambda_with_two_items_is_weighted_dpo():
    # K = 2: Δ = |G_w − G_l|·|1/log2(2) − 1/log2(3)| = (2^ψw − 2^ψl)·(1 − 1/log2 3), for any ranking
    pol = torch.stack([PW, PL], dim=1)
    ref = torch.stack([RW, RL], dim=1)
    psi_w, psi_l = 3.0, 1.0
    scores = torch.tensor([[psi_w, psi_l]] * B, dtype=torch.float64)
    weight = (2**psi_w - 2**psi_l) * (1 - 1 / math.log2(3))
    for rank_by in ("policy", "scores"):
        out = compute_listwise("lipo_lambda", pol, ref, scores=scores, beta=0.2, lipo_rank_by=rank_by)
        assert_same(out, weight * dpo(beta=0.2))


def test_tdpo_with_zero_sequential_kl_is_dpo():
    zero = torch.zeros(B, dtype=torch.float64)
    for name in ("tdpo1", "tdpo2"):
        assert_same(compute(name, *ARGS, beta=0.2, chosen_seq_kl=zero, rejected_seq_kl=zero), dpo(beta=0.2))


def test_ld_dpo_with_alpha_one_is_dpo_on_plain_sums():
    T = 5
    ct = torch.randn(B, T, dtype=torch.float64) - 2
    rt = torch.randn(B, T, dtype=torch.float64) - 2
    cm = torch.arange(T).expand(B, T) < torch.randint(1, T + 1, (B, 1))
    rm = torch.arange(T).expand(B, T) < torch.randint(1, T + 1, (B, 1))
    c, r = ld_sequence_logps(ct, rt, cm, rm, 1.0)
    assert_same(c, (ct * cm).sum(-1))
    assert_same(r, (rt * rm).sum(-1))
    # through compute, α = 1 needs no per-token inputs: the summed arguments are already the answer
    assert_same(compute("ld_dpo", *ARGS, ld_alpha=1.0), dpo())
    assert not torch.allclose(compute("ld_dpo", *ARGS, ld_alpha=0.5, chosen_token_logps=ct, rejected_token_logps=rt,
                                      chosen_token_mask=cm, rejected_token_mask=rm, ref_chosen_token_logps=ct,
                                      ref_rejected_token_logps=rt * 0.5), dpo())


def test_bco_pair_with_zero_delta_is_default():
    assert_same(compute("bco_pair", *ARGS, delta=0.0), compute("bco_pair", *ARGS))


def test_sft_example_and_batch_reductions_agree_for_equal_lengths():
    lengths = torch.full((B,), 7)
    a = compute("sft", PW, PL, chosen_lengths=lengths, nll_reduction="example")
    b = compute("sft", PW, PL, chosen_lengths=lengths, nll_reduction="batch")
    assert_same(a.mean(), b.mean())


@pytest.mark.parametrize("name", ["sigmoid", "hinge", "ipo", "robust", "nca_pair", "sppo_hard", "apo_down", "discopop"])
def test_dpo_family_objectives_use_the_f_divergence_scores(name):
    lens = dict(chosen_lengths=torch.full((B,), 3), rejected_lengths=torch.full((B,), 4))
    args = (PW, PL, PW + 0.3, PL - 0.2)  # moderate log-ratios so exp(-ρ) stays finite
    base = compute(name, *args, **lens)
    for kind in ("forward_kl", "js_divergence", "alpha_divergence"):
        out = compute(name, *args, f_divergence_type=kind, **lens)
        assert torch.isfinite(out).all()
        assert not torch.allclose(out, base), kind
