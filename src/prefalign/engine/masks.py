"""Attention masks for the packed, prefix-shared layout (see layout.py for the rule).

- ``dense_mask``: a 4-D [rows, 1, L, L] mask for SDPA (boolean, True = attend) or eager
  attention (additive float). Transformers passes a 4-D mask through to the attention kernel
  untouched.
- ``flex_block_mask``: a FlexAttention BlockMask built from the same rule; fully masked blocks
  are skipped, so cost follows the real (block-sparse) attention, not L².
"""

from __future__ import annotations

import torch


def allowed(segment_ids: torch.Tensor, branch_ids: torch.Tensor) -> torch.Tensor:
    """[R, L, L] bool: may query q attend to key k."""
    seg_q, seg_k = segment_ids[:, :, None], segment_ids[:, None, :]
    br_q, br_k = branch_ids[:, :, None], branch_ids[:, None, :]
    length = segment_ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()
    return (seg_q == seg_k) & causal & ((br_k == 0) | (br_k == br_q))


def dense_mask(segment_ids: torch.Tensor, branch_ids: torch.Tensor, *, attn_implementation: str,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 4-D mask in the form ``attn_implementation`` expects."""
    mask = allowed(segment_ids, branch_ids)[:, None]
    if attn_implementation == "sdpa":
        return mask
    # eager (and other kernels that add the mask to the scores) take an additive float mask
    additive = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return additive.masked_fill_(~mask, torch.finfo(dtype).min)


def flex_block_mask(segment_ids: torch.Tensor, branch_ids: torch.Tensor, *, num_heads=None):
    """A FlexAttention BlockMask for the layout (needs torch>=2.5; fastest on GPU)."""
    from torch.nn.attention.flex_attention import create_block_mask

    rows, length = segment_ids.shape

    def mask_mod(b, h, q, k):
        same = segment_ids[b, q] == segment_ids[b, k]
        branch_ok = (branch_ids[b, k] == 0) | (branch_ids[b, k] == branch_ids[b, q])
        return same & (k <= q) & branch_ok

    return create_block_mask(mask_mod, B=rows, H=None, Q_LEN=length, KV_LEN=length,
                             device=segment_ids.device)
