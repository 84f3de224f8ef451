"""Under bf16 autocast the chunked head's backward recomputes the same bf16 logits as its
forward, so its gradients match autograd through the plain computation under autocast."""

import torch

from prefalign.engine.logprobs import token_kl, token_logprobs


def _inputs(seed, n=24, hid=32, vocab=300):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hid, generator=g, requires_grad=True)
    w = (torch.randn(vocab, hid, generator=g) * 0.5).requires_grad_()
    b = torch.randn(vocab, generator=g).requires_grad_()
    return h, w, b, g


def _check(fast, plain, params, upstream):
    """Same values; gradients within 1% (norm); the bias gradient sums to zero over the
    vocabulary (d/d logits of log π(y), onehot − softmax, and of KL(π_ref ‖ π), softmax − π_ref,
    both sum to zero there)."""
    torch.testing.assert_close(fast, plain)
    fast_grads = torch.autograd.grad((fast * upstream).sum(), params)
    plain_grads = torch.autograd.grad((plain * upstream).sum(), params)
    for a, c in zip(fast_grads, plain_grads):
        assert float((a.float() - c.float()).norm() / c.float().norm()) < 1e-2
    grad_b = fast_grads[2]
    assert abs(float(grad_b.sum())) < 1e-4 * float(grad_b.abs().sum())


def test_token_logprobs_gradients_under_bf16_autocast():
    h, w, b, g = _inputs(0)
    targets = torch.randint(0, w.shape[0], (h.shape[0],), generator=g)
    upstream = torch.randn(h.shape[0], generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = token_logprobs(h, w, targets, bias=b, chunk_tokens=5)
        logits = (h @ w.t() + b).float()  # the op order of the chunked head
        plain = torch.log_softmax(logits, -1).gather(1, targets[:, None]).squeeze(1)
    _check(fast, plain, (h, w, b), upstream)


def test_token_kl_gradients_under_bf16_autocast():
    h, w, b, g = _inputs(1)
    rh, rw = torch.randn(h.shape[0], 16, generator=g), torch.randn(w.shape[0], 16, generator=g)
    upstream = torch.randn(h.shape[0], generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = token_kl(h, w, rh, rw, bias=b, chunk_tokens=5)
        logp = torch.log_softmax((h @ w.t() + b).float(), -1)
        ref_logp = torch.log_softmax((rh @ rw.t()).float(), -1)
        plain = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    _check(fast, plain, (h, w, b), upstream)
