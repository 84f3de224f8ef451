"""Plain-Python reference math for hand-computed expectations (no torch, no prefalign)."""

import math

import torch


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def t(*values: float) -> torch.Tensor:
    """A float64 tensor (exact enough to compare with math at 1e-10)."""
    return torch.tensor(values, dtype=torch.float64)


def close(actual: torch.Tensor, expected, tol: float = 1e-10) -> None:
    exp = torch.as_tensor(expected, dtype=torch.float64)
    assert actual.shape == exp.shape, (actual.shape, exp.shape)
    assert torch.allclose(actual.double(), exp, atol=tol, rtol=tol), (actual.tolist(), exp.tolist())


# One pair used across the hand-computed tests:
# ρ_w = -5.0 - (-5.5) = 0.5, ρ_l = -7.0 - (-6.5) = -0.5, h = 1.0, |y_w| = 4, |y_l| = 5.
PW, PL, RW, RL, LW, LL = -5.0, -7.0, -5.5, -6.5, 4, 5


def pair():
    return t(PW), t(PL), t(RW), t(RL), torch.tensor([LW]), torch.tensor([LL])
