"""TDPO's per-token KL(π_ref ‖ π): the chunked path equals a full softmax, in value and gradient,
and the packed model's per-response sums equal plain per-sequence forwards of both models."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from prefalign.engine.forward import PackedLogProbModel, plain_sequence_kl
from prefalign.engine.layout import pack
from prefalign.engine.logprobs import token_kl

from test_packed_forward import random_examples


def _full_logits(h, w, b, scale, softcap):
    logits = h @ w.t()
    if b is not None:
        logits = logits + b
    logits = logits * scale
    return softcap * torch.tanh(logits / softcap) if softcap else logits


@pytest.mark.parametrize("bias,scale,softcap", [(False, 1.0, None), (True, 0.5, None),
                                                (False, 1.0, 3.0), (True, 0.5, 3.0)])
def test_chunked_token_kl_equals_full_softmax(bias, scale, softcap):
    g = torch.Generator().manual_seed(0)
    n, hid, ref_hid, vocab = 13, 8, 6, 11
    h = torch.randn(n, hid, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(vocab, hid, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(vocab, generator=g, dtype=torch.float64, requires_grad=True) if bias else None
    rh = torch.randn(n, ref_hid, generator=g, dtype=torch.float64)
    rw = torch.randn(vocab, ref_hid, generator=g, dtype=torch.float64)
    weights = torch.randn(n, generator=g, dtype=torch.float64)

    fast = token_kl(h, w, rh, rw, bias=b, chunk_tokens=4, logit_scale=scale, softcap=softcap,
                    ref_logit_scale=2.0, ref_softcap=None)
    ref_logp = torch.log_softmax(_full_logits(rh, rw, None, 2.0, None), -1)
    logp = torch.log_softmax(_full_logits(h, w, b, scale, softcap), -1)
    plain = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    torch.testing.assert_close(fast, plain)
    assert (fast >= -1e-12).all()

    params = [p for p in (h, w, b) if p is not None]
    fast_grads = torch.autograd.grad((fast * weights).sum(), params)
    plain_grads = torch.autograd.grad((plain * weights).sum(), params)
    for a, c in zip(fast_grads, plain_grads):
        torch.testing.assert_close(a, c)


def test_token_kl_is_zero_against_itself_and_checks_shapes():
    g = torch.Generator().manual_seed(1)
    h, w = torch.randn(5, 4, generator=g), torch.randn(7, 4, generator=g)
    torch.testing.assert_close(token_kl(h, w, h, w), torch.zeros(5), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="vocabulary"):
        token_kl(h, w, h, torch.randn(8, 4))
    with pytest.raises(ValueError, match="same batch"):
        token_kl(h, w, h[:3], w)


@pytest.mark.parametrize("family", ["llama", "gemma"])
def test_packed_sequence_kl_equals_plain_forwards(tiny_model_dir, family):
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir(family), attn_implementation="sdpa")
    ref = AutoModelForCausalLM.from_pretrained(tiny_model_dir(family, seed=5),
                                               attn_implementation="sdpa").requires_grad_(False)
    examples = random_examples(seed=11, responses=(2, 3))
    batch = pack(examples, row_capacity=40)
    ref_out = PackedLogProbModel(ref, chunk_tokens=5)(batch, keep_head=True)
    fast = PackedLogProbModel(policy, chunk_tokens=5)(batch, kl_reference=ref_out.head)
    plain = plain_sequence_kl(policy, ref, examples)
    mask = batch.response_mask
    torch.testing.assert_close(fast.kl[mask], plain[mask], rtol=1e-4, atol=1e-5)
    assert (fast.kl[mask] > 0).all()

    weights = torch.randn(plain.shape, generator=torch.Generator().manual_seed(2)) * mask
    policy.zero_grad()
    (fast.kl * weights).sum().backward()
    fast_grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
    policy.zero_grad()
    (plain * weights).sum().backward()
    for name, p in policy.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(fast_grads[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)
