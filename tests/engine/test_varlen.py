"""The padding-free varlen path: its index plan, the stream layout, and equality with the
dense-mask path (the conformance matrix runs it on every family; here the details)."""

import pytest
import torch

from prefalign.engine.forward import PackedLogProbModel, plain_sequence_logps
from prefalign.engine.layout import pack, to_stream
from prefalign.engine.varlen import VarlenPlan

from test_packed_forward import Example, load, random_examples


def test_plan_splits_trunks_and_branches_with_gathered_prompt_keys():
    # prompt 3, chosen 2, rejected 3; then prompt 1, one response of 2
    batch = to_stream(pack([Example([10, 11, 12], [[20, 21], [30, 31, 32]]),
                            Example([40], [[50, 51]])], row_capacity=4))
    assert batch.input_ids.tolist() == [[10, 11, 12, 20, 21, 30, 31, 32, 40, 50, 51]]
    plan = VarlenPlan.from_batch(batch)
    # sequences: trunk 0 (prompt + chosen), branch (rejected), trunk 1
    assert plan.cu_seq_q.tolist() == [0, 5, 8, 11]
    assert plan.cu_seq_k.tolist() == [0, 5, 11, 14]
    assert plan.key_index.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 5, 6, 7, 8, 9, 10]
    # the rejected response's queries sit at logical positions 3, 4, 5 over its 6 keys
    assert plan.query_pos.tolist() == [0, 1, 2, 3, 4, 3, 4, 5, 0, 1, 2]
    mask = plan.mask(window=2)
    assert mask[5].nonzero().flatten().tolist() == [7, 8]  # last prompt key and itself
    assert (plan.max_q, plan.max_k) == (5, 6)


def test_stream_drops_padding_and_keeps_predictions_in_place():
    examples = random_examples(4)
    batch = pack(examples, row_capacity=20, pad_to_multiple_of=8)
    stream = to_stream(batch)
    assert (batch.segment_ids < 0).any() and stream.input_ids.shape == (1, batch.num_tokens)
    flat = batch.input_ids.reshape(-1)
    # each predicting state holds the same token in both layouts
    assert torch.equal(flat[batch.source_index], stream.input_ids[0][stream.source_index])
    assert torch.equal(stream.target_ids, batch.target_ids)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_varlen_equals_the_dense_path_with_and_without_checkpointing(tiny_model_dir,
                                                                     checkpointing):
    from transformers import AutoModelForCausalLM

    from prefalign.engine.loading import resolve_attn_implementation

    path = tiny_model_dir("mistral")  # sliding window 8: the windows matter
    dense = load(path, "sdpa")
    impl = resolve_attn_implementation(dense.config, "varlen")
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=impl,
                                                 dtype=torch.float32)
    if checkpointing:
        from prefalign.train.model_setup import enable_checkpointing

        enable_checkpointing(model)
        model.train()
    examples = random_examples(seed=9, n=8, vocab=(5, 90))
    for e in examples:
        e.prompt_ids = e.prompt_ids * 2  # prompts longer than the window
    batch = pack(examples, row_capacity=40)
    fast = PackedLogProbModel(model)(batch)
    reference = PackedLogProbModel(dense)(batch)
    torch.testing.assert_close(fast.logps, reference.logps, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        plain = plain_sequence_logps(dense, examples)
    torch.testing.assert_close(fast.logps[batch.response_mask], plain[batch.response_mask],
                               rtol=1e-5, atol=1e-5)
    fast.logps.sum().backward()
    reference.logps.sum().backward()
    dense_grads = dict(dense.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, dense_grads[name].grad, rtol=1e-4, atol=1e-5,
                                   msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlashAttention varlen needs CUDA")
def test_flash_varlen_on_cuda_is_close_to_eager_in_bf16(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from prefalign.engine.loading import resolve_attn_implementation

    path = tiny_model_dir("mistral")
    eager = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager",
                                                 dtype=torch.bfloat16).cuda()
    impl = resolve_attn_implementation(eager.config, "varlen")
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=impl,
                                                 dtype=torch.bfloat16).cuda()
    batch = pack(random_examples(seed=2, n=8, vocab=(5, 90)), row_capacity=40).to("cuda")
    fast = PackedLogProbModel(model)(batch).logps.float()
    ref = PackedLogProbModel(eager)(batch).logps.float()
    torch.testing.assert_close(fast, ref, rtol=2e-2, atol=5e-2)


def _plan_dropped(module, query, key, value, attention_mask, **kwargs):
    """An attention that drops the plan before the attention function (keyword arguments not
    passed down)."""
    from prefalign.engine import varlen

    kwargs.pop(varlen.KWARG, None)
    return varlen.varlen_attention(module, query, key, value, attention_mask, **kwargs)


def _plan_ignored(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """An attention computed without the attention function: causal over the whole stream."""
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key.repeat_interleave(query.shape[1] // key.shape[1], 1),
        value.repeat_interleave(query.shape[1] // value.shape[1], 1), is_causal=True,
        scale=scaling)
    return out.transpose(1, 2).contiguous(), None


@pytest.mark.parametrize("attention", [_plan_dropped, _plan_ignored])
def test_a_family_whose_attention_does_not_run_the_plan_is_refused_before_any_batch(
        tiny_model_dir, monkeypatch, attention):
    """However attention skips the plan, one refusal at the model's first forward (its probe),
    before a real batch; the second way trained on cross-example attention silently."""
    from transformers import AttentionInterface, AutoModelForCausalLM

    from prefalign.engine import varlen
    from prefalign.engine.attention import UnsupportedModelError
    from prefalign.engine.loading import resolve_attn_implementation

    path = tiny_model_dir("llama")
    impl = resolve_attn_implementation(load(path, "sdpa").config, "varlen")
    monkeypatch.setitem(AttentionInterface._global_mapping, varlen.NAME, attention)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=impl,
                                                 dtype=torch.float32).eval()
    with pytest.raises(UnsupportedModelError,
                       match="llama: its attention layers do not take the varlen kernel's index "
                             "plan"):
        PackedLogProbModel(model)(pack(random_examples(seed=1, n=3, vocab=(5, 90))))
