"""Per-token helpers: shape checks of values against masks, each side's own dtype, WPO means
over very short responses."""

import math

import pytest
import torch

from prefalign.objectives import ld_sequence_logps, wpo_log_weights, wpo_weights

from .hand import close


def test_token_values_and_mask_of_different_2d_shapes_are_refused():
    """A [B, T] mask that merely broadcasts against [B, T'] values (or has another T) is refused."""
    tok = torch.zeros(2, 3, dtype=torch.float64)
    good = torch.ones(2, 3, dtype=torch.bool)
    for bad in (torch.ones(1, 3, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)):
        with pytest.raises(ValueError, match=r"chosen_token_logps/chosen_token_mask: per-token values and mask "
                                             r"must both be \[batch, T\] with the same shape, got \(2, 3\) and"):
            ld_sequence_logps(tok, tok, bad, good, 0.5)
        with pytest.raises(ValueError, match=r"rejected_token_logps/rejected_token_mask: .* got \(2, 3\) and"):
            ld_sequence_logps(tok, tok, good, bad, 0.5)
        with pytest.raises(ValueError, match=r"WPO token log-probs/mask: .*same shape"):
            wpo_log_weights(tok, bad, tok)


def test_one_dimensional_token_values_are_refused_even_with_a_matching_mask():
    """Per-token values must be 2-D [batch, T]: a 1-D row with a 1-D mask of the same length is refused."""
    tok = torch.tensor([-1.0, -2.0], dtype=torch.float64)
    mask = torch.tensor([True, True])
    with pytest.raises(ValueError, match=r"must both be \[batch, T\] with the same shape, got \(2,\) and \(2,\)"):
        ld_sequence_logps(tok, tok, mask, mask, 0.5)
    with pytest.raises(ValueError, match=r"WPO token log-probs/mask: .*got \(2,\) and \(2,\)"):
        wpo_log_weights(tok, mask, tok)


def test_ld_sequence_logps_keeps_each_sides_dtype_and_precision():
    """With a float64 side and a float32 side, each result has its side's dtype, and the float64
    side's α weight is applied in float64, whichever side it is (its α was rounded to float32
    when the chosen side was the float32 one)."""
    alpha = 0.3
    c_tok = torch.tensor([[-1.0, -2.0, -3.0, -5.0]], dtype=torch.float64)
    c_mask = torch.tensor([[True, True, True, True]])
    r_tok = torch.tensor([[-0.5, -1.5, 8.0, 8.0]], dtype=torch.float32)
    r_mask = torch.tensor([[True, True, False, False]])
    c, r = ld_sequence_logps(c_tok, r_tok, c_mask, r_mask, alpha)
    assert c.dtype == torch.float64 and r.dtype == torch.float32
    close(c, [-1.0 - 2.0 + alpha * (-3.0 - 5.0)], tol=1e-12)
    close(r, [-2.0])
    # the other way round: a float32 chosen side with a float64 rejected side that runs longer
    c2, r2 = ld_sequence_logps(r_tok, c_tok, r_mask, c_mask, alpha)
    assert c2.dtype == torch.float32 and r2.dtype == torch.float64
    close(c2, [-2.0])
    close(r2, [-1.0 - 2.0 + alpha * (-3.0 - 5.0)], tol=1e-12)


def test_wpo_log_weight_of_a_one_token_response_is_that_tokens_adjusted_logp():
    """WPO's per-sequence log-weight is the mean over response tokens: for a single response token it
    is exactly log p − log Σp² of that token; a response without tokens gets 0."""
    tok = torch.tensor([[7.0, -1.25, 3.0], [5.0, 5.0, 5.0]], dtype=torch.float64)
    sumsq = torch.tensor([[9.0, -0.5, 1.0], [2.0, 2.0, 2.0]], dtype=torch.float64)
    mask = torch.tensor([[False, True, False], [False, False, False]])
    close(wpo_log_weights(tok, mask, sumsq), [-1.25 + 0.5, 0.0])
    # the pair weight with one-token responses on both sides: exp(sum of both), below the clamp
    r_tok = torch.tensor([[-0.75, 4.0, 4.0], [-2.0, 4.0, 4.0]], dtype=torch.float64)
    r_sq = torch.tensor([[-0.25, 0.0, 0.0], [-1.0, 0.0, 0.0]], dtype=torch.float64)
    r_mask = torch.tensor([[True, False, False], [True, False, False]])
    close(wpo_weights(tok, r_tok, mask, r_mask, sumsq, r_sq), [math.exp(-0.75 - 0.5), math.exp(-1.0)])
