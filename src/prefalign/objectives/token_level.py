"""Objectives and helpers that need per-token statistics, not just summed log-probs.

Per-token inputs (all padded, [B, T]; masked positions may hold any finite value):

* ``chosen_token_logps`` / ``rejected_token_logps``: policy log p(y_t | x, y_<t).
* ``chosen_token_mask`` / ``rejected_token_mask``: bool, True on response tokens.
* ``ref_chosen_token_logps`` / ``ref_rejected_token_logps``: the reference's, same masks.
* ``chosen_token_log_sumsq`` / ``rejected_token_log_sumsq``: log Σ_v p(v | x, y_<t)² under
  the policy (see :func:`log_sum_sq_probs`), for WPO.

TDPO (:mod:`.tdpo`) needs the sequential KL per response, Tensor[B] (see :func:`sequence_kl`):
``chosen_seq_kl`` / ``rejected_seq_kl`` = Σ_t KL(π_ref(·|x,y_<t) ‖ π(·|x,y_<t)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


LD_INPUTS = frozenset({"chosen_token_logps", "rejected_token_logps", "chosen_token_mask", "rejected_token_mask"})
LD_REF_INPUTS = frozenset({"ref_chosen_token_logps", "ref_rejected_token_logps"})
WPO_INPUTS = LD_INPUTS | frozenset({"chosen_token_log_sumsq", "rejected_token_log_sumsq"})
TOKEN_INPUTS = LD_INPUTS | LD_REF_INPUTS | WPO_INPUTS
TDPO_INPUTS = frozenset({"chosen_seq_kl", "rejected_seq_kl"})


def _check_token_pair(values: Tensor, mask: Tensor, what: str) -> None:
    if values.dim() != 2 or values.shape != mask.shape:
        raise ValueError(
            f"{what}: per-token values and mask must both be [batch, T] with the same shape, "
            f"got {tuple(values.shape)} and {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"{what}: the mask must be a bool tensor, got {mask.dtype}")


def ld_token_weights(
    chosen_mask: Tensor, rejected_mask: Tensor, alpha: float, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """LD-DPO token weights [B, T]: 1 on the first min(|y_w|, |y_l|) response tokens, α after, 0 off-mask.

    Positions are counted along each mask (the k-th True is response token k), so masks
    need not start at column 0.
    """
    min_len = torch.minimum(chosen_mask.sum(-1), rejected_mask.sum(-1)).unsqueeze(-1)

    def weights(mask: Tensor) -> Tensor:
        position = torch.cumsum(mask.long(), dim=-1)  # 1-based index of each response token
        one = torch.ones((), dtype=dtype, device=mask.device)
        w = torch.where(position <= min_len, one, one * alpha)
        return torch.where(mask, w, torch.zeros_like(w))

    return weights(chosen_mask), weights(rejected_mask)


def ld_sequence_logps(
    chosen_token_logps: Tensor,
    rejected_token_logps: Tensor,
    chosen_mask: Tensor,
    rejected_mask: Tensor,
    alpha: float,
) -> tuple[Tensor, Tensor]:
    """LD-DPO sequence log-probs: Σ_{t≤ℓ} log p_t + α·Σ_{t>ℓ} log p_t with ℓ = min(|y_w|, |y_l|).

    Apply to the policy and (with the same masks) to the reference. Gradients flow
    through the token log-probs. α = 1 gives the plain sums.
    """
    _check_token_pair(chosen_token_logps, chosen_mask, "chosen_token_logps/chosen_token_mask")
    _check_token_pair(rejected_token_logps, rejected_mask, "rejected_token_logps/rejected_token_mask")
    # weights in the wider of the two dtypes, then each side's own: α is not rounded to the
    # other side's precision
    wide = torch.promote_types(chosen_token_logps.dtype, rejected_token_logps.dtype)
    w_c, w_r = ld_token_weights(chosen_mask, rejected_mask, alpha, wide)
    zero = torch.zeros((), dtype=wide, device=chosen_token_logps.device)
    chosen = torch.where(chosen_mask, chosen_token_logps, zero.to(chosen_token_logps.dtype)) \
        * w_c.to(chosen_token_logps.dtype)
    rejected = torch.where(rejected_mask, rejected_token_logps, zero.to(rejected_token_logps.dtype)) \
        * w_r.to(rejected_token_logps.dtype)
    return chosen.sum(-1), rejected.sum(-1)


def log_sum_sq_probs(logits: Tensor) -> Tensor:
    """log Σ_v p(v)² from logits [..., V] (WPO's per-token normalizer), computed stably."""
    work = torch.promote_types(logits.dtype, torch.float32)
    return torch.logsumexp(2.0 * F.log_softmax(logits.to(work), dim=-1), dim=-1)


@torch.no_grad()
def wpo_log_weights(token_logps: Tensor, mask: Tensor, token_log_sumsq: Tensor) -> Tensor:
    """Per-sequence WPO log-weight: mean over response tokens of log p(y_t) − log Σ_v p(v)²."""
    _check_token_pair(token_logps, mask, "WPO token log-probs/mask")
    if token_log_sumsq.shape != token_logps.shape:
        raise ValueError(
            f"WPO: token_log_sumsq must be [batch, T] like the token log-probs, got {tuple(token_log_sumsq.shape)}"
        )
    adjusted = torch.where(mask, token_logps - token_log_sumsq, torch.zeros_like(token_logps))
    return adjusted.sum(-1) / mask.sum(-1).clamp_min(1).to(token_logps.dtype)


@torch.no_grad()
def wpo_weights(
    chosen_token_logps: Tensor,
    rejected_token_logps: Tensor,
    chosen_mask: Tensor,
    rejected_mask: Tensor,
    chosen_token_log_sumsq: Tensor,
    rejected_token_log_sumsq: Tensor,
    clamp_max: float | None = 1.0,
) -> Tensor:
    """WPO pair weights Tensor[B] = min(clamp_max, exp(lw_w + lw_l)), no gradient.

    lw = mean_t[log p(y_t) − log Σ_v p(v)²] ("sampled alignment" form of WPO's eq. 2): how
    likely the current policy is to produce the response, relative to how peaked its
    next-token distributions are. clamp_max=1.0 as TRL's implementation; None disables.
    """
    lw = wpo_log_weights(chosen_token_logps, chosen_mask, chosen_token_log_sumsq) + wpo_log_weights(
        rejected_token_logps, rejected_mask, rejected_token_log_sumsq
    )
    w = torch.exp(lw)
    return w if clamp_max is None else w.clamp(max=clamp_max)


def sequence_kl(policy_logits: Tensor, ref_logits: Tensor, mask: Tensor) -> Tensor:
    """Σ_t KL(π_ref(·|x,y_<t) ‖ π(·|x,y_<t)) over response positions, Tensor[B] (TDPO's D_SeqKL).

    ``policy_logits``/``ref_logits`` are [B, T, V] at the positions that predict each response
    token (already shifted); ``mask`` [B, T] bool. Gradients flow through the policy logits.
    """
    work = torch.promote_types(policy_logits.dtype, torch.float32)
    ref_logp = F.log_softmax(ref_logits.to(work), dim=-1)
    pol_logp = F.log_softmax(policy_logits.to(work), dim=-1)
    per_token = (ref_logp.exp() * (ref_logp - pol_logp)).sum(-1)
    return torch.where(mask, per_token, torch.zeros_like(per_token)).sum(-1)
