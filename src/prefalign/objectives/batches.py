"""Typed inputs handed to objective functions (built and validated by the dispatcher)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from .common import f_divergence_scores, log_ratio


@dataclass(frozen=True)
class PairwiseBatch:
    """Sequence log-probs of B (chosen, rejected) pairs, each a Tensor[B]."""

    policy_chosen_logps: Tensor
    policy_rejected_logps: Tensor
    ref_chosen_logps: Tensor | None = None
    ref_rejected_logps: Tensor | None = None
    chosen_lengths: Tensor | None = None
    rejected_lengths: Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def logratios(self) -> tuple[Tensor, Tensor]:
        """(ρ_w, ρ_l) = (π_w − ref_w, π_l − ref_l)."""
        return (
            log_ratio(self.policy_chosen_logps, self.ref_chosen_logps),
            log_ratio(self.policy_rejected_logps, self.ref_rejected_logps),
        )

    def lengths(self) -> tuple[Tensor, Tensor]:
        """(|y_w|, |y_l|); raises a ValueError saying what to pass when they are missing."""
        if self.chosen_lengths is None or self.rejected_lengths is None:
            raise ValueError(
                "needs response lengths: pass chosen_lengths and rejected_lengths (number of "
                "response tokens, Tensor[batch]) or the per-token masks chosen_token_mask / "
                "rejected_token_mask"
            )
        return self.chosen_lengths, self.rejected_lengths

    def scores(self, f_divergence_type: str = "reverse_kl", f_alpha_divergence_coef: float = 0.5) -> tuple[Tensor, Tensor]:
        """(s_w, s_l): the log-ratios passed through the f-divergence score (TRL step 1)."""
        rho_w, rho_l = self.logratios()
        return (
            f_divergence_scores(rho_w, f_divergence_type, f_alpha_divergence_coef),
            f_divergence_scores(rho_l, f_divergence_type, f_alpha_divergence_coef),
        )


@dataclass(frozen=True)
class UnpairedBatch:
    """B single completions with a desirable (True) / undesirable (False) label."""

    policy_logps: Tensor
    labels: Tensor
    ref_logps: Tensor | None = None
    lengths: Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def require_lengths(self) -> Tensor:
        """|y| per example; raises a ValueError saying what to pass when missing."""
        if self.lengths is None:
            raise ValueError("needs response lengths: pass lengths= (number of response tokens, Tensor[batch])")
        return self.lengths


@dataclass(frozen=True)
class ListwiseBatch:
    """B lists of K completions each: Tensor[B, K] log-probs, scores and validity mask."""

    policy_logps: Tensor
    ref_logps: Tensor | None
    scores: Tensor | None
    lengths: Tensor | None
    mask: Tensor
    extras: dict[str, Any] = field(default_factory=dict)
