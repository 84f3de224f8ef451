"""Token log-probs from hidden states, with the LM head applied in chunks.

The [tokens x vocab] logits of a batch never exist at once: the forward keeps one chunk of
logits at a time and saves only its inputs; the backward recomputes each chunk's logits (one
extra head matmul, under the forward's autocast state so they are the same logits) to form
``d logp / d logits = onehot - softmax``. The head runs only on the positions that predict
response tokens.

Optional per-token statistics (no gradient) come from the same chunks for free:
``log_sum_p2`` = log Σ_v p(v)² (WPO's weight), ``entropy``, and ``topk_mass``/``topk_entropy``
for the likelihood over-optimisation diagnostics.
"""

from __future__ import annotations

import contextlib

import torch

DEFAULT_CHUNK_TOKENS = 1024


def _logits(hidden, weight, bias, scale, softcap):
    """Head logits in float32 for one chunk; returns (logits, tanh term for the softcap)."""
    logits = hidden @ weight.t()
    if bias is not None:
        logits = logits + bias
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if scale != 1.0:
        logits = logits * scale
    if softcap:
        squashed = torch.tanh(logits / softcap)
        return softcap * squashed, squashed
    return logits, None


def head_logits(hidden, weight, bias=None, *, logit_scale: float = 1.0,
                softcap: float | None = None) -> torch.Tensor:
    """Full head logits (float32) as the chunked paths compute them."""
    return _logits(hidden, weight, bias, float(logit_scale), softcap)[0]


def _autocast_dtype(device_type: str):
    """The autocast dtype in force for ``device_type``, or None when autocast is off."""
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def _same_autocast(device_type: str, dtype):
    """Re-enter the forward's autocast state in a backward, so recomputed logits equal the
    forward's (the backward runs after the autocast region has closed)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def _stats(logits, logp_all, want, topk):
    out = {}
    probs = logp_all.exp()
    if "log_sum_p2" in want:
        out["log_sum_p2"] = torch.logsumexp(2 * logp_all, dim=-1)
    if "entropy" in want:
        out["entropy"] = -(probs * logp_all).sum(-1)
    if "topk_mass" in want or "topk_entropy" in want:
        top_logp = logp_all.topk(topk, dim=-1).values
        mass = top_logp.exp().sum(-1)
        out["topk_mass"] = mass
        # entropy of the renormalised top-k distribution
        renorm = top_logp - mass.log()[:, None]
        out["topk_entropy"] = -(renorm.exp() * renorm).sum(-1)
    return {k: v for k, v in out.items() if k in want}


def _head_chain(dlogits, squashed, scale):
    """Chain rule through the softcap and the logit scale of `_logits`, in place."""
    if squashed is not None:
        dlogits.mul_(1 - squashed * squashed)
    if scale != 1.0:
        dlogits.mul_(scale)


def _grad_buffers(ctx, hidden, weight, bias, acc):
    """Empty head gradients for the inputs that need one (weights accumulate in ``acc``)."""
    need_h, need_w, need_b = ctx.needs_input_grad[:3]
    grad_h = torch.empty_like(hidden) if need_h else None
    grad_w = torch.zeros_like(weight, dtype=acc) if need_w else None
    grad_b = torch.zeros_like(bias, dtype=acc) if (need_b and bias is not None) else None
    return grad_h, grad_w, grad_b


def _cast_back(grad_w, grad_b, weight, bias):
    return (None if grad_w is None else grad_w.to(weight.dtype),
            None if grad_b is None else grad_b.to(bias.dtype))


def _accumulate(dlogits, h, start, weight, grad_h, grad_w, grad_b, acc):
    """Add one chunk's head gradients: hidden rows, weight and bias (weights in ``acc``)."""
    if grad_h is not None:
        grad_h[start:start + h.shape[0]] = dlogits @ weight
    if grad_w is not None:
        grad_w.addmm_(dlogits.t().to(acc), h.to(acc))
    if grad_b is not None:
        grad_b += dlogits.to(acc).sum(0)


class _ChunkedTokenLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk, scale, softcap):
        n = hidden.shape[0]
        out_dtype = torch.promote_types(hidden.dtype, torch.float32)
        token_logps = hidden.new_empty(n, dtype=out_dtype)
        lse = hidden.new_empty(n, dtype=out_dtype)
        for s in range(0, n, chunk):
            logits, _ = _logits(hidden[s:s + chunk], weight, bias, scale, softcap)
            lse[s:s + chunk] = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(1, targets[s:s + chunk, None]).squeeze(1)
            token_logps[s:s + chunk] = picked - lse[s:s + chunk]
        ctx.save_for_backward(hidden, weight, bias, targets)
        ctx.chunk, ctx.scale, ctx.softcap = chunk, scale, softcap
        ctx.autocast = (hidden.device.type, _autocast_dtype(hidden.device.type))
        return token_logps

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias, targets = ctx.saved_tensors
        chunk, scale, softcap = ctx.chunk, ctx.scale, ctx.softcap
        acc = grad_out.dtype  # float32 or wider: accumulate weight gradients in it
        grad_h, grad_w, grad_b = _grad_buffers(ctx, hidden, weight, bias, acc)
        with _same_autocast(*ctx.autocast):
            for s in range(0, hidden.shape[0], chunk):
                h = hidden[s:s + chunk]
                g = grad_out[s:s + chunk]
                logits, squashed = _logits(h, weight, bias, scale, softcap)
                # d logp_t / d logits = onehot(t) - softmax (of these very logits, so the
                # probabilities sum to 1 whatever precision the recompute ran in)
                dlogits = torch.softmax(logits, dim=-1).mul_(-g[:, None])
                dlogits.scatter_add_(1, targets[s:s + chunk, None], g[:, None])
                _head_chain(dlogits, squashed, scale)
                _accumulate(dlogits.to(weight.dtype), h, s, weight, grad_h, grad_w, grad_b, acc)
        grad_w, grad_b = _cast_back(grad_w, grad_b, weight, bias)
        return grad_h, grad_w, grad_b, None, None, None, None


def token_logprobs(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *,
                   bias: torch.Tensor | None = None, chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                   logit_scale: float = 1.0, softcap: float | None = None) -> torch.Tensor:
    """log p(target | hidden) for each row of ``hidden`` [N, H]; differentiable, chunked."""
    if hidden.shape[0] == 0:
        return hidden.new_zeros(0, dtype=torch.promote_types(hidden.dtype, torch.float32))
    return _ChunkedTokenLogProbs.apply(hidden, weight, bias, targets, int(chunk_tokens),
                                       float(logit_scale), softcap)


@torch.no_grad()
def token_statistics(hidden: torch.Tensor, weight: torch.Tensor, want: set[str], *,
                     bias: torch.Tensor | None = None, chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                     logit_scale: float = 1.0, softcap: float | None = None,
                     topk: int = 10) -> dict[str, torch.Tensor]:
    """Per-token distribution statistics (no gradient), computed chunk by chunk."""
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in want}
    for s in range(0, hidden.shape[0], chunk_tokens):
        logits, _ = _logits(hidden[s:s + chunk_tokens], weight, bias, logit_scale, softcap)
        logp_all = torch.log_softmax(logits, dim=-1)
        for name, value in _stats(logits, logp_all, want, min(topk, logits.shape[-1])).items():
            parts[name].append(value)
    return {name: torch.cat(v) if v else hidden.new_zeros(0) for name, v in parts.items()}


class _ChunkedTokenKL(torch.autograd.Function):
    """KL(π_ref(·|t) ‖ π(·|t)) per token from both models' hidden states, chunk by chunk.

    Gradient (policy side only): d KL / d logits = softmax(logits) − p_ref, since Σ p_ref = 1.
    The backward recomputes both chunks' logits, so neither [tokens x vocab] matrix is kept.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, ref_hidden, ref_weight, ref_bias, chunk, heads):
        (scale, softcap), (ref_scale, ref_softcap) = heads
        n = hidden.shape[0]
        kl = hidden.new_empty(n, dtype=torch.promote_types(hidden.dtype, torch.float32))
        for s in range(0, n, chunk):
            # in place where possible: three [chunk x vocab] tensors at a time
            logp = torch.log_softmax(_logits(hidden[s:s + chunk], weight, bias, scale, softcap)[0],
                                     dim=-1)
            ref_logp = torch.log_softmax(_logits(ref_hidden[s:s + chunk], ref_weight, ref_bias,
                                                 ref_scale, ref_softcap)[0], dim=-1)
            diff = torch.sub(ref_logp, logp, out=logp)
            kl[s:s + chunk] = ref_logp.exp_().mul_(diff).sum(-1)
        ctx.save_for_backward(hidden, weight, bias, ref_hidden, ref_weight, ref_bias)
        ctx.chunk, ctx.heads = chunk, heads
        ctx.autocast = (hidden.device.type, _autocast_dtype(hidden.device.type))
        return kl

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias, ref_hidden, ref_weight, ref_bias = ctx.saved_tensors
        chunk = ctx.chunk
        (scale, softcap), (ref_scale, ref_softcap) = ctx.heads
        acc = grad_out.dtype
        grad_h, grad_w, grad_b = _grad_buffers(ctx, hidden, weight, bias, acc)
        with _same_autocast(*ctx.autocast):
            for s in range(0, hidden.shape[0], chunk):
                h = hidden[s:s + chunk]
                logits, squashed = _logits(h, weight, bias, scale, softcap)
                ref_logits, _ = _logits(ref_hidden[s:s + chunk], ref_weight, ref_bias, ref_scale,
                                        ref_softcap)
                dlogits = torch.softmax(logits, dim=-1)
                dlogits.sub_(torch.softmax(ref_logits, dim=-1)).mul_(grad_out[s:s + chunk, None])
                _head_chain(dlogits, squashed, scale)
                _accumulate(dlogits.to(weight.dtype), h, s, weight, grad_h, grad_w, grad_b, acc)
        grad_w, grad_b = _cast_back(grad_w, grad_b, weight, bias)
        return grad_h, grad_w, grad_b, None, None, None, None, None


def token_kl(hidden: torch.Tensor, weight: torch.Tensor, ref_hidden: torch.Tensor,
             ref_weight: torch.Tensor, *, bias: torch.Tensor | None = None,
             ref_bias: torch.Tensor | None = None, chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
             logit_scale: float = 1.0, softcap: float | None = None,
             ref_logit_scale: float = 1.0, ref_softcap: float | None = None) -> torch.Tensor:
    """KL(π_ref ‖ π) over the vocabulary at each row of ``hidden`` [N, H] (the policy's hidden
    states) and ``ref_hidden`` [N, H_ref] (the reference's, same positions); differentiable in
    the policy's hidden states and head, chunked. TDPO's per-token KL."""
    if weight.shape[0] != ref_weight.shape[0]:
        raise ValueError(f"the policy's vocabulary ({weight.shape[0]}) and the reference's "
                         f"({ref_weight.shape[0]}) differ; a per-token KL needs one vocabulary")
    if hidden.shape[0] != ref_hidden.shape[0]:
        raise ValueError(f"{hidden.shape[0]} policy positions but {ref_hidden.shape[0]} "
                         "reference positions; both must come from the same batch")
    if hidden.shape[0] == 0:
        return hidden.new_zeros(0, dtype=torch.promote_types(hidden.dtype, torch.float32))
    ref_hidden, ref_weight = ref_hidden.detach(), ref_weight.detach()
    ref_bias = None if ref_bias is None else ref_bias.detach()
    heads = ((float(logit_scale), softcap), (float(ref_logit_scale), ref_softcap))
    return _ChunkedTokenKL.apply(hidden, weight, bias, ref_hidden, ref_weight, ref_bias,
                                 int(chunk_tokens), heads)
