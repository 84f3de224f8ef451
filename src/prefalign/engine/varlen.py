"""Padding-free prefix sharing through variable-length attention (FlashAttention on CUDA).

The batch is one token stream with no padding: per example the prompt, then each response (the
layout of layout.py, packed into a single row). Attention then splits into independent causal
*sequences*: each example's **trunk** (prompt + first response) and one **branch** per further
response, whose queries are the response's tokens and whose keys are the prompt's keys followed
by the response's own (gathered by index, never recomputed). With the usual bottom-right causal
alignment a branch's query j sits at key index P + j, which is exactly its logical position, so a
sliding window counted in keys is counted in logical positions, as the model defines it.

`VarlenPlan` is that index plan; `varlen_attention` is registered with transformers as the
attention implementation ``"prefalign_varlen"``. On CUDA it runs torch's
``varlen_attn`` (FlashAttention: no [L, L] mask, no padding); elsewhere the same plan runs
through SDPA with a [queries, gathered keys] mask, which the tests hold equal to the dense-mask
path. Called without a plan (the model's own forward, generation) it is plain SDPA.

The plan reaches every attention layer through the forward's keyword arguments
(``prefalign_varlen=plan``), which transformers passes down to the attention function, so it
survives activation checkpointing. A layer that is called without it while a plan is active
raises instead of attending over the whole stream.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass

import torch

from prefalign.engine.attention import AttentionPlan, UnsupportedModelError

NAME = "prefalign_varlen"
KWARG = "prefalign_varlen"
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("prefalign_varlen_active", default=False)


@dataclass
class VarlenPlan:
    """Index plan of a padding-free, prefix-shared stream of T tokens (queries in stream order)."""

    key_index: torch.Tensor  # [Tk] long: stream position of each gathered key
    cu_seq_q: torch.Tensor  # [S + 1] int32: query offsets of each sequence
    cu_seq_k: torch.Tensor  # [S + 1] int32: key offsets of each sequence
    max_q: int
    max_k: int
    query_seq: torch.Tensor  # [T] long: the sequence of each query
    query_pos: torch.Tensor  # [T] long: its aligned (logical) position in that sequence
    key_seq: torch.Tensor  # [Tk] long
    key_pos: torch.Tensor  # [Tk] long
    # the model's attention plan (which window each layer type has), so a layer's window comes
    # from what the model's masks would say, not from whether its code passes it along
    attention: "AttentionPlan | None" = None

    def window_of(self, module, passed: int | None) -> int | None:
        """The sliding window of the layer ``module`` (None: full causal)."""
        plan = self.attention
        if plan is None:
            return passed
        if plan.mapping:
            layer_types = getattr(module.config, "layer_types", None)
            index = getattr(module, "layer_idx", None)
            if layer_types is None or index is None:
                kinds = set(plan.kinds.values())
                if len(kinds) > 1:
                    raise UnsupportedModelError(
                        f"{type(module).__name__} does not say which layer it is, so the varlen "
                        "kernel cannot tell its window; use attn_implementation 'auto'")
                kind = next(iter(kinds))
            else:
                kind = plan.kinds[layer_types[index]]
        else:
            kind = next(iter(plan.kinds.values()))
        if passed is not None and passed != kind.window:
            raise UnsupportedModelError(
                f"{type(module).__name__} asks for a sliding window of {passed} where its masks "
                f"would use {kind.window}; use attn_implementation 'auto'")
        return kind.window

    @classmethod
    def from_batch(cls, batch, attention: "AttentionPlan | None" = None) -> "VarlenPlan":
        """The plan of a one-row, padding-free `PackedBatch` (see `layout.to_stream`)."""
        if batch.input_ids.shape[0] != 1 or bool((batch.segment_ids < 0).any()):
            raise ValueError("the varlen plan needs one padding-free row")
        seg, branch = batch.segment_ids[0].tolist(), batch.branch_ids[0].tolist()
        spans: dict[tuple[int, int], list[int]] = {}  # (segment, branch) -> [start, end)
        for i, key in enumerate(zip(seg, branch)):
            span = spans.setdefault(key, [i, i])
            span[1] = i + 1
        keys, q_lens, k_lens = [], [], []
        for (s, b), (start, end) in spans.items():
            if b == 0:
                continue  # the prompt is part of its trunk
            p_start, p_end = spans[(s, 0)]
            if start == p_end:  # trunk: prompt + first response, contiguous in the stream
                keys.append(torch.arange(p_start, end))
                q_lens.append(end - p_start)
            else:
                keys.append(torch.cat([torch.arange(p_start, p_end), torch.arange(start, end)]))
                q_lens.append(end - start)
            k_lens.append(len(keys[-1]))
        device = batch.input_ids.device
        q_lens_t, k_lens_t = torch.tensor(q_lens), torch.tensor(k_lens)
        seq_ids = torch.arange(len(q_lens))
        query_seq = torch.repeat_interleave(seq_ids, q_lens_t)
        key_seq = torch.repeat_interleave(seq_ids, k_lens_t)
        q_start = torch.cumsum(q_lens_t, 0) - q_lens_t
        k_start = torch.cumsum(k_lens_t, 0) - k_lens_t
        query_pos = (torch.arange(int(q_lens_t.sum())) - q_start[query_seq]
                     + (k_lens_t - q_lens_t)[query_seq])
        key_pos = torch.arange(int(k_lens_t.sum())) - k_start[key_seq]
        zero = torch.zeros(1, dtype=torch.long)
        return cls(key_index=torch.cat(keys).to(device),
                   cu_seq_q=torch.cat([zero, torch.cumsum(q_lens_t, 0)]).to(device, torch.int32),
                   cu_seq_k=torch.cat([zero, torch.cumsum(k_lens_t, 0)]).to(device, torch.int32),
                   max_q=int(q_lens_t.max()), max_k=int(k_lens_t.max()),
                   query_seq=query_seq.to(device), query_pos=query_pos.to(device),
                   key_seq=key_seq.to(device), key_pos=key_pos.to(device), attention=attention)

    def mask(self, window: int | None) -> torch.Tensor:
        """[T, Tk] bool: the plan as a dense mask over the gathered keys (the non-CUDA path)."""
        q_pos, k_pos = self.query_pos[:, None], self.key_pos[None, :]
        ok = (self.query_seq[:, None] == self.key_seq[None, :]) & (k_pos <= q_pos)
        if window is not None:
            ok &= (q_pos - k_pos) < window
        return ok


def refusal(family: str, how: str) -> UnsupportedModelError:
    """The one refusal of a family whose attention layers cannot run the varlen plan, whichever
    way they fail to (no custom attention at all, keyword arguments not passed down, attention
    computed without the attention function)."""
    return UnsupportedModelError(
        f"{family}: its attention layers do not take the varlen kernel's index plan ({how}); "
        "use attn_implementation 'auto' or 'sdpa' (dense masks)")


@contextlib.contextmanager
def active():
    """While a packed forward runs: transformers builds no [L, L] masks for this implementation,
    and a layer that gets no plan raises."""
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _use_flash(query: torch.Tensor) -> bool:
    if query.device.type != "cuda":
        return False
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return query.dtype in (torch.float16, torch.bfloat16)


def _flash(q, k, v, plan: VarlenPlan, scale: float, window: int | None) -> torch.Tensor:
    """torch's varlen FlashAttention, causal (bottom-right aligned: a branch's last query sees
    its last key), with the window as (window - 1 keys to the left, none to the right)."""
    import inspect

    from torch.nn.attention.varlen import varlen_attn

    params = inspect.signature(varlen_attn).parameters
    if "window_size" not in params:
        raise UnsupportedModelError("this torch's varlen_attn has no window_size (causal "
                                    "masking); use attn_implementation 'auto'")
    extra = {}
    if k.shape[1] != q.shape[1]:
        if "enable_gqa" in params:
            extra["enable_gqa"] = True
        else:  # older torch: repeat the key/value heads
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    return varlen_attn(q, k, v, plan.cu_seq_q, plan.cu_seq_k, plan.max_q, plan.max_k,
                       scale=scale, window_size=(-1 if window is None else window - 1, 0),
                       **extra)


def varlen_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                     **kwargs):
    """transformers attention function: query [1, H, T, D], key/value [1, Hkv, T, D] ->
    ([1, T, H, D], None)."""
    plan: VarlenPlan | None = kwargs.get(KWARG)
    if plan is None:
        if _ACTIVE.get():
            raise refusal(getattr(getattr(module, "config", None), "model_type", None)
                          or type(module).__name__,
                          f"{type(module).__name__} does not pass the attention keyword "
                          "arguments down")
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling,
                                      dropout=dropout, **kwargs)
    for name in ("softcap", "s_aux", "sinks"):
        if kwargs.get(name) is not None:
            raise UnsupportedModelError(
                f"varlen attention has no {name}; use attn_implementation 'auto'")
    window = plan.window_of(module, kwargs.get("sliding_window"))
    q = query[0].transpose(0, 1)  # [T, H, D]
    k = key[0].transpose(0, 1).index_select(0, plan.key_index)  # [Tk, Hkv, D]
    v = value[0].transpose(0, 1).index_select(0, plan.key_index)
    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    if _use_flash(q):
        return _flash(q, k, v, plan, scale, window)[None], None
    out = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
        attn_mask=plan.mask(window)[None, None], scale=scale,
        enable_gqa=k.shape[1] != q.shape[1])
    return out.transpose(1, 2).contiguous(), None


def _mask(*args, **kwargs):
    """No mask while a plan is active (the plan is the mask); SDPA's otherwise."""
    if _ACTIVE.get():
        return None
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(*args, **kwargs)


def register() -> None:
    """Make ``attn_implementation="prefalign_varlen"`` known to transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, varlen_attention)
    AttentionMaskInterface.register(NAME, _mask)
