"""The engine's GPU paths against the plain computation on the same GPU (skipped without CUDA).

CPU runs FlexAttention forward only and autocast on CPU kernels; these check what only a GPU
runs: FlexAttention's backward through the prefix-sharing block mask, and the chunked head and
per-token KL under CUDA bf16 autocast.
"""

import pytest
import torch
from transformers import AutoModelForCausalLM

from prefalign.engine.forward import PackedLogProbModel, plain_sequence_logps
from prefalign.engine.layout import pack
from prefalign.engine.logprobs import token_kl, token_logprobs

from test_head_autocast import _check
from test_packed_forward import grads, random_examples

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


def _load(path, impl, dtype=torch.float32):
    return AutoModelForCausalLM.from_pretrained(path, attn_implementation=impl, dtype=dtype).to(CUDA)


@pytest.mark.parametrize("family", ["llama", "gemma"])
@pytest.mark.parametrize("impl", ["flex_attention", "sdpa"])
def test_packed_logps_and_gradients_equal_plain_forward_on_cuda(tiny_model_dir, family, impl):
    path = tiny_model_dir(family)
    fast_model, plain_model = _load(path, impl), _load(path, "eager")
    examples = random_examples(seed=11)
    batch = pack(examples, row_capacity=40).to(CUDA)
    assert batch.input_ids.shape[0] < len(examples), "examples should share rows"
    fast = PackedLogProbModel(fast_model, chunk_tokens=7)(batch)
    plain = plain_sequence_logps(plain_model, examples)
    mask = batch.response_mask
    torch.testing.assert_close(fast.logps[mask], plain[mask], rtol=1e-4, atol=1e-4)

    weights = torch.randn(plain.shape, generator=torch.Generator().manual_seed(1)).to(CUDA) * mask
    (fast.logps * weights).sum().backward()
    (plain * weights).sum().backward()
    plain_grads = grads(plain_model)
    for name, g in grads(fast_model).items():
        torch.testing.assert_close(g, plain_grads[name], rtol=1e-3, atol=1e-4, msg=name)


def test_flex_attention_under_bf16_autocast_is_close_to_fp32(tiny_model_dir):
    model = _load(tiny_model_dir("llama"), "flex_attention")
    batch = pack(random_examples(seed=5), row_capacity=40).to(CUDA)
    mask = batch.response_mask
    fp32 = PackedLogProbModel(model, chunk_tokens=7)(batch).logps[mask]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        bf16 = PackedLogProbModel(model, chunk_tokens=7)(batch).logps[mask]
    assert bf16.dtype == torch.float32  # the head accumulates in fp32
    assert not torch.equal(bf16, fp32)  # autocast really ran
    torch.testing.assert_close(bf16, fp32, rtol=5e-2, atol=5e-2)


def _head_inputs(seed, n=96, hid=64, vocab=1000):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hid, generator=g).to(CUDA).requires_grad_()
    w = (torch.randn(vocab, hid, generator=g) * 0.5).to(CUDA).requires_grad_()
    b = torch.randn(vocab, generator=g).to(CUDA).requires_grad_()
    return h, w, b, g


def test_chunked_head_gradients_under_cuda_bf16_autocast():
    h, w, b, g = _head_inputs(0)
    targets = torch.randint(0, w.shape[0], (h.shape[0],), generator=g).to(CUDA)
    upstream = torch.randn(h.shape[0], generator=g).to(CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        fast = token_logprobs(h, w, targets, bias=b, chunk_tokens=17)
        logits = (h @ w.t() + b).float()
        plain = torch.log_softmax(logits, -1).gather(1, targets[:, None]).squeeze(1)
    _check(fast, plain, (h, w, b), upstream)


def test_token_kl_gradients_under_cuda_bf16_autocast():
    h, w, b, g = _head_inputs(1)
    rh = torch.randn(h.shape[0], 16, generator=g).to(CUDA)
    rw = torch.randn(w.shape[0], 16, generator=g).to(CUDA)
    upstream = torch.randn(h.shape[0], generator=g).to(CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        fast = token_kl(h, w, rh, rw, bias=b, chunk_tokens=17)
        logp = torch.log_softmax((h @ w.t() + b).float(), -1)
        ref_logp = torch.log_softmax((rh @ rw.t()).float(), -1)
        plain = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    _check(fast, plain, (h, w, b), upstream)
