"""compute(): Python lists take the dtype of policy_chosen_logps (the first tensor), also when
policy_rejected_logps is a tensor of another dtype; unknown keywords suggest the three closest names."""

import math

import pytest
import torch

from prefalign.objectives import compute

from .hand import close, logsig

# exactly representable in float32, so only the conversion of the lists can lose precision
PC = torch.tensor([-3.0, -5.25], dtype=torch.float64)
PR = torch.tensor([-4.5, -6.0], dtype=torch.float32)
RC, RR = [-1 / 3, -5 / 3], [-7 / 3, -2 / 7]


def _h():
    return [(a - c) - (b - d) for a, b, c, d in zip(PC.tolist(), PR.tolist(), RC, RR)]


def test_reference_lists_take_the_chosen_policy_dtype_not_the_rejected_one():
    """ref_* given as lists are converted in float64 like policy_chosen_logps, not float32 like
    policy_rejected_logps: the loss matches the float64 formula to 1e-12."""
    out = compute("sigmoid", PC, PR, RC, RR, beta=1.0)
    assert out.dtype == torch.float64
    close(out, [-logsig(h) for h in _h()], tol=1e-12)


def test_extra_input_lists_take_the_chosen_policy_dtype_not_the_rejected_one():
    """An extra input (ODPO's margin) given as a list is converted in policy_chosen_logps's dtype."""
    margin = [1 / 3, 2 / 7]
    ref_c, ref_r = torch.tensor(RC, dtype=torch.float64), torch.tensor(RR, dtype=torch.float64)
    out = compute("odpo", PC, PR, ref_c, ref_r, beta=1.0, margin=margin)
    close(out, [-logsig(h - math.log1p(m)) for h, m in zip(_h(), margin)], tol=1e-12)


def test_unknown_keyword_suggests_at_most_the_three_closest_names():
    """A misspelt keyword lists the three closest accepted names, closest first, and no more."""
    with pytest.raises(ValueError, match=r"unknown hyperparameter or input 'chosen_token_logp'\. Did you mean "
                                         r"'chosen_token_logps' or 'ref_chosen_token_logps' or "
                                         r"'chosen_token_log_sumsq'\? Hyperparameters: "):
        compute("sigmoid", PC, PC, PC, PC, chosen_token_logp=torch.zeros(2, 3))
