"""The packed, prefix-shared, chunked path equals one plain forward per prompt + response."""

import random
from dataclasses import dataclass

import pytest
import torch
from transformers import AutoModelForCausalLM

from prefalign.engine.forward import PackedLogProbModel, plain_sequence_logps
from prefalign.engine.layout import pack, plan_rows
from prefalign.engine.masks import allowed


@dataclass
class Example:
    prompt_ids: list
    responses: list
    index: int = 0


def random_examples(seed, n=6, responses=(1, 2, 3), vocab=(5, 100)):
    rnd = random.Random(seed)
    tok = lambda k: [rnd.randrange(*vocab) for _ in range(k)]
    return [Example(tok(rnd.randint(1, 9)), [tok(rnd.randint(1, 7)) for _ in range(rnd.choice(responses))], i)
            for i in range(n)]


def load(path, impl="sdpa"):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(path, attn_implementation=impl, dtype=torch.float32)


def grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_packed_equals_plain(model, examples, batch):
    """The packed batch's log-probs and every parameter gradient equal one plain forward per
    prompt + response (rtol 1e-5 / 1e-4)."""
    fast = PackedLogProbModel(model, chunk_tokens=7)(batch)
    plain = plain_sequence_logps(model, examples)
    mask = batch.response_mask
    torch.testing.assert_close(fast.logps[mask], plain[mask], rtol=1e-5, atol=1e-5)

    weights = torch.randn(plain.shape, generator=torch.Generator().manual_seed(1)) * mask
    model.zero_grad()
    (fast.logps * weights).sum().backward()
    fast_grads = grads(model)
    model.zero_grad()
    (plain * weights).sum().backward()
    for name, g in grads(model).items():
        torch.testing.assert_close(fast_grads[name], g, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "gemma"])
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_packed_logps_and_gradients_equal_plain_forward(tiny_model_dir, family, impl):
    model = load(tiny_model_dir(family), impl)
    examples = random_examples(seed=len(family) * 7 + len(impl))
    batch = pack(examples, row_capacity=40)
    assert batch.input_ids.shape[0] < len(examples), "examples should share rows"
    assert_packed_equals_plain(model, examples, batch)


def test_pair_layout_shares_the_prompt_and_restarts_positions():
    ex = Example([10, 11, 12], [[20, 21], [30, 31, 32]])
    b = pack([ex])
    assert b.input_ids[0].tolist() == [10, 11, 12, 20, 21, 30, 31, 32]
    assert b.position_ids[0].tolist() == [0, 1, 2, 3, 4, 3, 4, 5]
    assert b.branch_ids[0].tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    # chosen is predicted from the last prompt token, then from itself; rejected likewise
    assert b.source_index.tolist() == [2, 3, 2, 5, 6]
    assert b.target_ids.tolist() == [20, 21, 30, 31, 32]
    mask = allowed(b.segment_ids, b.branch_ids)[0]
    rejected_first = 5
    assert mask[rejected_first, :3].all() and not mask[rejected_first, 3:5].any()
    assert mask[rejected_first, rejected_first]


def test_packing_keeps_examples_apart():
    a, b = Example([1, 2], [[3]]), Example([4], [[5, 6]])
    batch = pack([a, b], row_capacity=100)
    assert batch.input_ids.shape == (1, 6)
    mask = allowed(batch.segment_ids, batch.branch_ids)[0]
    assert not mask[3:, :3].any(), "the second example must not see the first"


def test_plan_rows_is_first_fit_decreasing_and_never_splits_items():
    rows = plan_rows([5, 3, 4, 2, 6], capacity=8)
    assert sorted(i for row in rows for i in row) == [0, 1, 2, 3, 4]
    for row in rows:
        assert sum([5, 3, 4, 2, 6][i] for i in row) <= 8
    assert len(rows) == 3
    assert plan_rows([10], capacity=4) == [[0]]


def test_chunk_size_does_not_change_results(tiny_model_dir):
    model = load(tiny_model_dir("llama"))
    batch = pack(random_examples(3))
    a = PackedLogProbModel(model, chunk_tokens=1)(batch).logps
    b = PackedLogProbModel(model, chunk_tokens=4096)(batch).logps
    torch.testing.assert_close(a, b)


def test_token_statistics_match_full_softmax(tiny_model_dir):
    model = load(tiny_model_dir("qwen2"))
    ex = Example([7, 8, 9], [[10, 11, 12, 13]])
    out = PackedLogProbModel(model, chunk_tokens=2)(pack([ex]), stats=("log_sum_p2", "entropy", "topk_mass"), topk=5)
    ids = torch.tensor([ex.prompt_ids + ex.responses[0]])
    logp = torch.log_softmax(model(ids).logits[0, 2:-1].float(), -1)
    torch.testing.assert_close(out.stats["log_sum_p2"], torch.logsumexp(2 * logp, -1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.stats["entropy"], -(logp.exp() * logp).sum(-1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.stats["topk_mass"], logp.exp().topk(5, -1).values.sum(-1), rtol=1e-5, atol=1e-6)
    padded, mask = out.padded()
    assert padded.shape == (1, 1, 4) and mask.all()
    torch.testing.assert_close(padded.sum(-1), out.logps)


def test_empty_prompt_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="empty prompt"):
        pack([Example([], [[1, 2]])])


def test_windows_and_chunks_count_logical_positions():
    from prefalign.engine.masks import AttentionKind

    # prompt of 3, chosen of 2, rejected of 3: positions 0 1 2 | 3 4 | 3 4 5
    b = pack([Example([10, 11, 12], [[20, 21], [30, 31, 32]])])
    window = allowed(b.segment_ids, b.branch_ids, b.position_ids, AttentionKind(window=2))[0]
    # the rejected response's first token (col 5, position 3) sees the last prompt token
    # (position 2) and itself, not the prompt token at position 1, nor the chosen response
    assert window[5].nonzero().flatten().tolist() == [2, 5]
    assert window[7].nonzero().flatten().tolist() == [6, 7]
    chunk = allowed(b.segment_ids, b.branch_ids, b.position_ids, AttentionKind(chunk=4))[0]
    # chunks [0..3], [4..7] by position: position 4 of the chosen response starts a new chunk
    assert chunk[4].nonzero().flatten().tolist() == [4]
    assert chunk[5].nonzero().flatten().tolist() == [0, 1, 2, 5]


def test_flex_mask_mod_equals_the_dense_mask():
    from torch.nn.attention.flex_attention import create_mask

    from prefalign.engine.masks import FULL, AttentionKind, flex_mask_mod

    batch = pack(random_examples(5), row_capacity=40)
    seg, br, pos = batch.segment_ids, batch.branch_ids, batch.position_ids
    rows, length = seg.shape
    for kind in (FULL, AttentionKind(window=3), AttentionKind(chunk=4)):
        dense = allowed(seg, br, pos, kind)
        flex = create_mask(flex_mask_mod(seg, br, pos, kind), rows, None, length, length,
                           device="cpu")
        assert torch.equal(flex[:, 0], dense), kind
