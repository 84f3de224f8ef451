"""ObjectiveState.fill: the statistics it fills are 0-d tensors in policy_chosen_logps's dtype
(the same first-tensor convention compute() uses), holding the moments' values."""

import torch

from prefalign import objectives as O
from prefalign.objectives import get


def test_filled_statistics_take_the_chosen_policy_dtype():
    """With float64 chosen and float32 rejected log-probs, β-DPO's gap moments are filled as float64."""
    pc = torch.tensor([-3.0, -5.25, -1.5], dtype=torch.float64)
    pr = torch.tensor([-4.5, -6.0, -2.25], dtype=torch.float32)
    rc = torch.tensor([-3.5, -5.0, -3.0], dtype=torch.float64)
    rr = torch.tensor([-4.0, -7.0, -3.0], dtype=torch.float32)
    state = O.ObjectiveState(get("beta_dpo"))
    filled = state.observe(O.PairwiseBatch(pc, pr, rc, rr))
    assert filled.gap_mean.dtype == torch.float64 and filled.gap_std.dtype == torch.float64
    assert filled.gap_mean.shape == () and filled.gap_mean.item() == state.moments["gap"].mean
    assert filled.gap_std.item() == state.moments["gap"].std
