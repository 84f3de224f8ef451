"""The FlexAttention block-mask path of the packed forward equals a plain forward.

FlexAttention runs forward-only on CPU (its backward needs a GPU), so this checks the block mask
(prefix sharing, restarted positions, packed examples kept apart) without gradients; the
gradient path is the same autograd graph as SDPA's, checked in test_packed_forward.py.
"""

import torch
from transformers import AutoModelForCausalLM

from prefalign.engine.forward import PackedLogProbModel, plain_sequence_logps
from prefalign.engine.layout import pack

from test_packed_forward import random_examples


def test_flex_attention_packed_logps_equal_plain_forward(tiny_model_dir):
    path = tiny_model_dir("llama")
    flex = AutoModelForCausalLM.from_pretrained(path, attn_implementation="flex_attention")
    assert flex.config._attn_implementation == "flex_attention"
    plain_model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa")
    examples = random_examples(seed=3)
    batch = pack(examples, row_capacity=40)
    assert batch.input_ids.shape[0] < len(examples), "examples should share rows"
    with torch.no_grad():
        fast = PackedLogProbModel(flex, chunk_tokens=7)(batch)
        plain = plain_sequence_logps(plain_model, examples)
    mask = batch.response_mask
    torch.testing.assert_close(fast.logps[mask], plain[mask], rtol=1e-5, atol=1e-5)
