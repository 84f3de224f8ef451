"""Hyperparameter specs shared by several objectives (declared once, composed per entry)."""

from __future__ import annotations

from .common import F_DIVERGENCES
from .registry import Hyperparameter


def beta(default: float = 0.1, description: str = "", typical: str = "0.01-0.5", *,
         zero_ok: bool = False) -> Hyperparameter:
    """β, the inverse temperature on the implicit reward (strength of the reference tie).

    β > 0 wherever it scales (or divides) the reward; ``zero_ok`` where it is a weight λ whose
    0 means "that term off" (ORPO, ASFT)."""
    return Hyperparameter(
        "beta",
        default,
        description or "scale of the implicit reward β·(log π − log π_ref); larger keeps the policy nearer the reference",
        typical,
        low=0.0,
        low_open=not zero_ok,
    )


def label_smoothing(default: float = 0.0, description: str = "", typical: str = "0-0.2", *,
                    low_open: bool = False, high: float = 0.5) -> Hyperparameter:
    """ε, the assumed flip rate: [0, 0.5) (at 0.5 the two labels weigh the same; past it the
    preference is reversed); EXO's smoothing is (0, 1)."""
    return Hyperparameter(
        "label_smoothing",
        default,
        description or "assumed probability ε that a preference label is flipped",
        typical,
        low=0.0,
        high=high,
        low_open=low_open,
        high_open=True,
    )


F_DIVERGENCE = (
    Hyperparameter(
        "f_divergence_type",
        "reverse_kl",
        "divergence to the reference (f-DPO): turns log-ratios into f′ scores",
        "reverse_kl = DPO",
        choices=F_DIVERGENCES,
    ),
    Hyperparameter(
        "f_alpha_divergence_coef",
        0.5,
        "α of the alpha divergence (used only when f_divergence_type='alpha_divergence'); in TRL's "
        "convention α→1 is reverse KL, in the paper's α→0 is",
        "0-1",
        low=0.0,
        high=1.0,
    ),
    Hyperparameter(
        "f_alpha_convention",
        "trl",
        "how f_alpha_divergence_coef is read: 'trl' (TRL >= 0.29: s = exp((α−1)ρ)/(α−1)) or 'paper' "
        "(the f-DPO paper: s = (1 − exp(−αρ))/α, which is TRL's with 1 − α); they agree only at 0.5",
        choices=("trl", "paper"),
    ),
)

LD_ALPHA = Hyperparameter(
    "ld_alpha",
    None,
    "LD-DPO: weight of the tokens past the shorter response's length (None = off); "
    "needs per-token log-probs",
    "0.1-0.9 (tuned per model in the paper)",
    low=0.0,
    high=1.0,
)
LD_APPLY_TO_REFERENCE = Hyperparameter(
    "ld_apply_to_reference",
    True,
    "LD-DPO: also rebuild the reference log-probs (paper and TRL >= 0.29); False = policy only (TRL <= 0.28)",
)
USE_WEIGHTING = Hyperparameter(
    "use_weighting",
    False,
    "WPO: multiply each pair's loss by w_w·w_l (no gradient); needs per-token log-probs and log Σp²",
)

LD_MODIFIERS = (LD_ALPHA, LD_APPLY_TO_REFERENCE)
