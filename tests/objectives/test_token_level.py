"""LD-DPO, WPO and the sequential-KL helper against hand-computed values."""

import math

import torch

from prefalign.objectives import (
    compute,
    ld_sequence_logps,
    log_sum_sq_probs,
    sequence_kl,
    wpo_weights,
)

from .hand import close, logsig, t

# chosen has 3 response tokens, rejected 2 (right-padded with garbage)
C_TOK = torch.tensor([[-1.0, -2.0, -3.0]], dtype=torch.float64)
R_TOK = torch.tensor([[-0.5, -0.5, 99.0]], dtype=torch.float64)
C_MASK = torch.tensor([[True, True, True]])
R_MASK = torch.tensor([[True, True, False]])


def test_ld_sequence_logps_downweights_tokens_past_the_shorter_response():
    c, r = ld_sequence_logps(C_TOK, R_TOK, C_MASK, R_MASK, 0.5)
    close(c, [-1.0 - 2.0 + 0.5 * -3.0])
    close(r, [-1.0])


def test_ld_masks_need_not_start_at_column_zero():
    c_tok = torch.tensor([[7.0, -1.0, -2.0, -3.0]], dtype=torch.float64)
    c_mask = torch.tensor([[False, True, True, True]])
    r_tok = torch.tensor([[7.0, 7.0, -0.5, -0.5]], dtype=torch.float64)
    r_mask = torch.tensor([[False, False, True, True]])
    c, r = ld_sequence_logps(c_tok, r_tok, c_mask, r_mask, 0.2)
    close(c, [-3.0 + 0.2 * -3.0])
    close(r, [-1.0])


def test_ld_dpo_through_compute_rebuilds_policy_and_reference():
    ref_c = torch.tensor([[-1.5, -2.0, -2.0]], dtype=torch.float64)
    ref_r = torch.tensor([[-0.25, -0.25, 0.0]], dtype=torch.float64)
    kw = dict(chosen_token_logps=C_TOK, rejected_token_logps=R_TOK, chosen_token_mask=C_MASK,
              rejected_token_mask=R_MASK, ref_chosen_token_logps=ref_c, ref_rejected_token_logps=ref_r)
    pw, pl = -1 - 2 + 0.5 * -3, -1.0
    rw, rl = -1.5 - 2 + 0.5 * -2, -0.5
    h = (pw - rw) - (pl - rl)
    # the summed arguments are replaced by the rebuilt ones (pass deliberately wrong sums)
    out = compute("ld_dpo", t(0.0), t(0.0), t(0.0), t(0.0), beta=0.5, ld_alpha=0.5, **kw)
    close(out, [-logsig(0.5 * h)])
    # the same through the generic modifier on plain DPO
    close(compute("sigmoid", t(0.0), t(0.0), t(0.0), t(0.0), beta=0.5, ld_alpha=0.5, **kw), out.tolist())


def test_ld_policy_only_variant_keeps_reference_sums():
    kw = dict(chosen_token_logps=C_TOK, rejected_token_logps=R_TOK, chosen_token_mask=C_MASK, rejected_token_mask=R_MASK)
    out = compute("sigmoid", t(0.0), t(0.0), t(-4.0), t(-1.5), beta=0.5, ld_alpha=0.5, ld_apply_to_reference=False, **kw)
    h = (-4.5 - -4.0) - (-1.0 - -1.5)
    close(out, [-logsig(0.5 * h)])


def test_wpo_weights_are_exp_of_mean_adjusted_logps_clamped_at_one():
    c_sq = torch.tensor([[-0.5, -1.0, -1.0]], dtype=torch.float64)
    r_sq = torch.tensor([[-0.25, -0.25, 5.0]], dtype=torch.float64)
    lw_c = ((-1.0 + 0.5) + (-2.0 + 1.0) + (-3.0 + 1.0)) / 3
    lw_r = ((-0.5 + 0.25) + (-0.5 + 0.25)) / 2
    close(wpo_weights(C_TOK, R_TOK, C_MASK, R_MASK, c_sq, r_sq), [math.exp(lw_c + lw_r)])
    big = wpo_weights(C_TOK, R_TOK, C_MASK, R_MASK, c_sq - 10, r_sq - 10)
    close(big, [1.0])


def test_wpo_multiplies_dpo_loss_by_pair_weight():
    c_sq = torch.tensor([[-0.5, -1.0, -1.0]], dtype=torch.float64)
    r_sq = torch.tensor([[-0.25, -0.25, 5.0]], dtype=torch.float64)
    w = math.exp(((-0.5) + (-1.0) + (-2.0)) / 3 + (-0.25))
    pw, pl, rw, rl = t(-5.0), t(-7.0), t(-5.5), t(-6.5)
    kw = dict(chosen_token_logps=C_TOK, rejected_token_logps=R_TOK, chosen_token_mask=C_MASK,
              rejected_token_mask=R_MASK, chosen_token_log_sumsq=c_sq, rejected_token_log_sumsq=r_sq)
    close(compute("wpo", pw, pl, rw, rl, beta=0.5, **kw), [w * -logsig(0.5)])
    close(compute("hinge", pw, pl, rw, rl, beta=0.5, use_weighting=True, **kw), [w * 0.5])


def test_log_sum_sq_probs_matches_definition():
    logits = torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64)
    p = [math.exp(x) for x in (0.3, -1.0, 2.0)]
    z = sum(p)
    close(log_sum_sq_probs(logits), [math.log(sum((q / z) ** 2 for q in p))], tol=1e-6)


def test_sequence_kl_sums_kl_of_reference_to_policy_over_response_tokens():
    pol = torch.tensor([[[0.0, 1.0], [2.0, 0.0], [5.0, 5.0]]], dtype=torch.float64)
    ref = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [0.0, 9.0]]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])

    def kl(r, p):
        rz, pz = sum(math.exp(x) for x in r), sum(math.exp(x) for x in p)
        rp = [math.exp(x) / rz for x in r]
        pp = [math.exp(x) / pz for x in p]
        return sum(a * math.log(a / b) for a, b in zip(rp, pp))

    expected = kl([1.0, 0.0], [0.0, 1.0]) + kl([0.0, 0.0], [2.0, 0.0])
    close(sequence_kl(pol, ref, mask), [expected], tol=1e-6)
