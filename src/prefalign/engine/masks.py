"""Attention masks for the packed, prefix-shared layout (see layout.py for the rule).

A model's layers may attend in different ways (full causal, a sliding window, fixed chunks);
each kind gets its own mask. Windows and chunks are counted in *logical* positions (the
``position_ids``: a response's positions restart right after its prompt), so a response token
sees exactly the keys it would see in one plain forward over prompt + response.

- ``dense_mask``: a 4-D [rows, 1, L, L] mask for SDPA (boolean, True = attend) or eager
  attention (additive float). Transformers passes a 4-D mask through to the attention kernel
  untouched.
- ``flex_block_mask``: a FlexAttention BlockMask built from the same rule; fully masked blocks
  are skipped, so cost follows the real (block-sparse) attention, not L².
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AttentionKind:
    """How one kind of layer restricts attention beyond causality, as transformers defines it:
    a sliding window lets query q see key k iff ``pos[q] - pos[k] < window``; chunked attention
    iff ``pos[q] // chunk == pos[k] // chunk``."""

    window: int | None = None
    chunk: int | None = None

    def describe(self) -> str:
        if self.window is not None:
            return f"sliding window {self.window}"
        if self.chunk is not None:
            return f"chunks of {self.chunk}"
        return "full"


FULL = AttentionKind()


def allowed(segment_ids: torch.Tensor, branch_ids: torch.Tensor,
            position_ids: torch.Tensor | None = None, kind: AttentionKind = FULL) -> torch.Tensor:
    """[R, L, L] bool: may query q attend to key k."""
    seg_q, seg_k = segment_ids[:, :, None], segment_ids[:, None, :]
    br_q, br_k = branch_ids[:, :, None], branch_ids[:, None, :]
    length = segment_ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()
    mask = (seg_q == seg_k) & causal & ((br_k == 0) | (br_k == br_q))
    if kind.window is None and kind.chunk is None:
        return mask
    if position_ids is None:
        raise ValueError(f"attention with {kind.describe()} needs the position ids")
    pos_q, pos_k = position_ids[:, :, None], position_ids[:, None, :]
    if kind.window is not None:
        mask &= (pos_q - pos_k) < kind.window
    if kind.chunk is not None:
        mask &= torch.div(pos_q, kind.chunk, rounding_mode="floor") == torch.div(
            pos_k, kind.chunk, rounding_mode="floor")
    return mask


def dense_mask(segment_ids: torch.Tensor, branch_ids: torch.Tensor,
               position_ids: torch.Tensor | None = None, kind: AttentionKind = FULL, *,
               attn_implementation: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 4-D mask in the form ``attn_implementation`` expects."""
    mask = allowed(segment_ids, branch_ids, position_ids, kind)[:, None]
    if attn_implementation == "sdpa":
        return mask
    # eager (and other kernels that add the mask to the scores) take an additive float mask
    additive = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return additive.masked_fill_(~mask, torch.finfo(dtype).min)


def flex_mask_mod(segment_ids: torch.Tensor, branch_ids: torch.Tensor,
                  position_ids: torch.Tensor | None = None, kind: AttentionKind = FULL):
    """The layout's rule as a FlexAttention ``mask_mod(b, h, q, k)``."""
    if (kind.window is not None or kind.chunk is not None) and position_ids is None:
        raise ValueError(f"attention with {kind.describe()} needs the position ids")

    def mask_mod(b, h, q, k):
        same = segment_ids[b, q] == segment_ids[b, k]
        branch_ok = (branch_ids[b, k] == 0) | (branch_ids[b, k] == branch_ids[b, q])
        ok = same & (k <= q) & branch_ok
        if kind.window is not None:
            ok = ok & (position_ids[b, q] - position_ids[b, k] < kind.window)
        if kind.chunk is not None:
            ok = ok & (position_ids[b, q] // kind.chunk == position_ids[b, k] // kind.chunk)
        return ok

    return mask_mod


def flex_block_mask(segment_ids: torch.Tensor, branch_ids: torch.Tensor,
                    position_ids: torch.Tensor | None = None, kind: AttentionKind = FULL):
    """A FlexAttention BlockMask for the layout (needs torch>=2.5; fastest on GPU)."""
    from torch.nn.attention.flex_attention import create_block_mask

    rows, length = segment_ids.shape
    return create_block_mask(flex_mask_mod(segment_ids, branch_ids, position_ids, kind), B=rows,
                             H=None, Q_LEN=length, KV_LEN=length, device=segment_ids.device)
