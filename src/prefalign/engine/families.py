"""Tiny random configs of the decoder families prefalign is checked on, each with its
distinctive feature switched on (windows shorter than the test sequences, several experts,
biases, tied embeddings, soft-capping, logit scales, attention sinks, NoPE layers).

The conformance tests (tests/engine/test_families.py) run every entry through the packed,
prefix-shared forward and one plain forward per sequence, and ``scripts/models_matrix.py``
turns that run into docs/models.md. Families listed in ``REFUSED`` are expected to be refused
up front by `prefalign.engine.attention.attention_plan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

VOCAB = 96
WINDOW = 4  # shorter than the test sequences, so a dropped window shows
# where length-dependent RoPE changes regime: test sequences fall on both sides of it
ROPE_SWITCH = 14
_SMALL = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              head_dim=8, pad_token_id=0, bos_token_id=1, eos_token_id=2)


@dataclass(frozen=True)
class Family:
    name: str               # transformers model_type (-variant where one family has several)
    features: str           # what the tiny config switches on
    config: Callable[[], Any] = field(repr=False)
    moe: bool = False


def _cfg(cls_name: str, **overrides) -> Callable[[], Any]:
    def build():
        import transformers

        kwargs = {**_SMALL, **overrides}
        return getattr(transformers, cls_name)(**{k: v for k, v in kwargs.items()
                                                  if v is not _DROP})
    return build


_DROP = object()  # removes a key of _SMALL that a config class does not take
_MOE = dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=24,
            output_router_logits=False)

FAMILIES: list[Family] = [
    Family("llama", "GQA, untied head, attention bias", _cfg(
        "LlamaConfig", attention_bias=True, tie_word_embeddings=False)),
    Family("mistral", f"sliding window {WINDOW} on every layer", _cfg(
        "MistralConfig", sliding_window=WINDOW)),
    Family("ministral", f"sliding window {WINDOW} / full layers alternating", _cfg(
        "MinistralConfig", sliding_window=WINDOW,
        layer_types=["sliding_attention", "full_attention"])),
    Family("mixtral", f"MoE 4 experts top-2, sliding window {WINDOW}", _cfg(
        "MixtralConfig", sliding_window=WINDOW, num_local_experts=4, num_experts_per_tok=2),
        moe=True),
    Family("qwen2", f"QKV bias, tied embeddings, sliding window {WINDOW} on layer 1", _cfg(
        "Qwen2Config", tie_word_embeddings=True, use_sliding_window=True,
        sliding_window=WINDOW, max_window_layers=1)),
    Family("qwen3", f"QK norm, sliding window {WINDOW} on layer 1", _cfg(
        "Qwen3Config", head_dim=8, use_sliding_window=True, sliding_window=WINDOW,
        max_window_layers=1)),
    Family("qwen2_moe", "MoE 4 experts top-2 + shared expert", _cfg(
        "Qwen2MoeConfig", **_MOE, shared_expert_intermediate_size=24, decoder_sparse_step=1),
        moe=True),
    Family("qwen3_moe", "MoE 4 experts top-2, QK norm", _cfg(
        "Qwen3MoeConfig", **_MOE, head_dim=8, decoder_sparse_step=1), moe=True),
    Family("gemma", "GeGLU, scaled embeddings, tied head", _cfg("GemmaConfig", head_dim=8)),
    Family("gemma2", f"sliding window {WINDOW} / full alternating, attention and final "
           "logit soft-capping", _cfg(
               "Gemma2Config", head_dim=8, sliding_window=WINDOW, attn_logit_softcapping=5.0,
               final_logit_softcapping=3.0, query_pre_attn_scalar=8)),
    Family("gemma3_text", f"sliding window {WINDOW} (5 of 6 layers), local RoPE base, QK norm",
           _cfg("Gemma3TextConfig", head_dim=8, sliding_window=WINDOW, num_hidden_layers=6,
                query_pre_attn_scalar=8, final_logit_softcapping=3.0)),
    Family("phi3", f"fused QKV, sliding window {WINDOW}", _cfg(
        "Phi3Config", sliding_window=WINDOW, pad_token_id=0)),
    Family("phi3-longrope", f"longrope: short factors up to {ROPE_SWITCH} tokens, long past "
           "them (Phi-3-128k, Phi-3.5, Phi-4-mini)", _cfg(
        "Phi3Config", pad_token_id=0, original_max_position_embeddings=ROPE_SWITCH,
        rope_parameters={
            "rope_type": "longrope", "rope_theta": 10000.0,
            "original_max_position_embeddings": ROPE_SWITCH,
            "short_factor": [1.0, 1.3, 1.7, 2.0], "long_factor": [1.5, 3.0, 6.0, 9.0]})),
    Family("llama-dynamic", f"dynamic NTK RoPE, base rescaled past {ROPE_SWITCH} tokens", _cfg(
        "LlamaConfig", max_position_embeddings=ROPE_SWITCH,
        rope_parameters={"rope_type": "dynamic", "factor": 4.0, "rope_theta": 10000.0})),
    Family("olmo2", "QK norm, post-norm", _cfg("Olmo2Config")),
    Family("olmo3", f"sliding window {WINDOW} / full layers", _cfg(
        "Olmo3Config", sliding_window=WINDOW,
        layer_types=["sliding_attention", "full_attention"])),
    Family("gpt_neox", "parallel residual, partial rotary, biases", _cfg(
        "GPTNeoXConfig", num_key_value_heads=_DROP, rotary_pct=0.5, use_parallel_residual=True,
        tie_word_embeddings=False)),
    Family("gpt2", "learned absolute positions, tied head, biases", _cfg(
        "GPT2Config", n_embd=32, n_layer=2, n_head=4, n_positions=256, hidden_size=_DROP,
        intermediate_size=_DROP, num_hidden_layers=_DROP, num_attention_heads=_DROP,
        num_key_value_heads=_DROP, max_position_embeddings=_DROP, pad_token_id=_DROP)),
    Family("granite", "embedding/residual/attention multipliers, logits scaling", _cfg(
        "GraniteConfig", embedding_multiplier=2.0, residual_multiplier=0.5,
        attention_multiplier=0.2, logits_scaling=4.0)),
    Family("cohere", "parallel block, logit scale, LayerNorm", _cfg(
        "CohereConfig", logit_scale=0.5, use_qk_norm=False)),
    Family("cohere2", f"sliding window {WINDOW} with RoPE / full NoPE layers, logit scale", _cfg(
        "Cohere2Config", sliding_window=WINDOW, logit_scale=0.5,
        layer_types=["sliding_attention", "full_attention"])),
    Family("starcoder2", f"biases, LayerNorm, sliding window {WINDOW}", _cfg(
        "Starcoder2Config", sliding_window=WINDOW)),
    Family("gpt_oss", f"attention sinks, sliding window {WINDOW} / full, MoE 4 experts top-2",
           _cfg("GptOssConfig", head_dim=8, sliding_window=WINDOW, num_local_experts=4,
                num_experts_per_tok=2, layer_types=["sliding_attention", "full_attention"]),
           moe=True),
    Family("smollm3", "NoPE on every other layer", _cfg(
        "SmolLM3Config", no_rope_layer_interval=2)),
    Family("phi", "partial rotary, parallel block, biases", _cfg(
        "PhiConfig", num_key_value_heads=_DROP, partial_rotary_factor=0.5)),
    Family("olmoe", "MoE 4 experts top-2, QK norm", _cfg(
        "OlmoeConfig", num_experts=4, num_experts_per_tok=2), moe=True),
    Family("granitemoe", "MoE 4 experts top-2, multipliers, logits scaling", _cfg(
        "GraniteMoeConfig", num_local_experts=4, num_experts_per_tok=2, logits_scaling=4.0,
        embedding_multiplier=2.0), moe=True),
    Family("glm4", "partial rotary, post-attention norms", _cfg("Glm4Config", head_dim=8)),
    Family("stablelm", "partial rotary, LayerNorm, QKV bias", _cfg(
        "StableLmConfig", use_qkv_bias=True, partial_rotary_factor=0.5)),
    Family("deepseek_v3", "multi-head latent attention, MoE with shared expert", _cfg(
        "DeepseekV3Config", head_dim=4, num_key_value_heads=4, kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=4,
        qk_nope_head_dim=4, v_head_dim=8, n_routed_experts=4, num_experts_per_tok=2,
        n_shared_experts=1, moe_intermediate_size=24, first_k_dense_replace=1, n_group=1,
        topk_group=1), moe=True),
    Family("llama4_text", "chunked attention (chunks of 4) on RoPE layers, NoPE every 2nd "
           "layer, MoE", _cfg(
               "Llama4TextConfig", attention_chunk_size=WINDOW, no_rope_layers=[1, 0],
               num_local_experts=4, num_experts_per_tok=1, intermediate_size_mlp=48,
               interleave_moe_layer_step=1, attn_temperature_tuning=True), moe=True),
    Family("exaone4", f"sliding window {WINDOW} / full layers, QK norm", _cfg(
        "Exaone4Config", sliding_window=WINDOW, sliding_window_pattern=2,
        layer_types=["sliding_attention", "full_attention"])),
    Family("phimoe", f"MoE 4 experts top-2, sliding window {WINDOW}", _cfg(
        "PhimoeConfig", sliding_window=WINDOW, num_local_experts=4, num_experts_per_tok=2),
        moe=True),
    Family("falcon", "parallel attention, multi-query, RoPE", _cfg(
        "FalconConfig", num_kv_heads=1, new_decoder_architecture=False, multi_query=True,
        alibi=False, num_key_value_heads=_DROP, intermediate_size=_DROP, head_dim=_DROP)),
    Family("gptj", "parallel block, partial rotary (interleaved)", _cfg(
        "GPTJConfig", n_embd=32, n_layer=2, n_head=4, n_positions=256, rotary_dim=4,
        hidden_size=_DROP, num_hidden_layers=_DROP, num_attention_heads=_DROP,
        num_key_value_heads=_DROP, max_position_embeddings=_DROP, intermediate_size=_DROP)),
    Family("gpt_bigcode", "multi-query attention, learned positions", _cfg(
        "GPTBigCodeConfig", n_embd=32, n_layer=2, n_head=4, n_positions=256, multi_query=True,
        hidden_size=_DROP, num_hidden_layers=_DROP, num_attention_heads=_DROP,
        num_key_value_heads=_DROP, max_position_embeddings=_DROP, intermediate_size=_DROP)),
    Family("opt", "learned positions with offset, post/pre-norm", _cfg(
        "OPTConfig", ffn_dim=48, word_embed_proj_dim=32, num_key_value_heads=_DROP,
        intermediate_size=_DROP)),
    Family("jetmoe", "mixture of attention heads and MoE MLP", _cfg(
        "JetMoeConfig", kv_channels=8, num_local_experts=4, num_experts_per_tok=2,
        num_key_value_heads=_DROP), moe=True),
    Family("helium", "GQA, RMSNorm", _cfg("HeliumConfig")),
    Family("seed_oss", "QKV bias, GQA", _cfg("SeedOssConfig", attention_bias=True)),
    Family("glm4_moe", "MoE with shared expert, partial rotary", _cfg(
        "Glm4MoeConfig", n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1,
        moe_intermediate_size=24, first_k_dense_replace=1, n_group=1, topk_group=1),
        moe=True),
]

# Families refused up front, and why (checked by the tests: each must raise before any work).
REFUSED: list[Family] = [
    Family("bloom", "ALiBi positions", _cfg(
        "BloomConfig", n_layer=2, n_head=4, num_hidden_layers=_DROP,
        num_attention_heads=_DROP, num_key_value_heads=_DROP, intermediate_size=_DROP)),
    Family("gpt_neo", "local attention (window 4) / global layers, learned positions", _cfg(
        "GPTNeoConfig", num_layers=2, num_heads=4, window_size=WINDOW,
        attention_types=[[["global", "local"], 1]], num_hidden_layers=_DROP,
        num_attention_heads=_DROP, num_key_value_heads=_DROP)),
    Family("mamba", "state-space layers", _cfg(
        "MambaConfig", hidden_size=32, state_size=4, num_hidden_layers=2,
        intermediate_size=_DROP, num_attention_heads=_DROP, num_key_value_heads=_DROP,
        max_position_embeddings=_DROP)),
    Family("jamba", "attention + state-space layers", _cfg(
        "JambaConfig", num_experts=2, num_experts_per_tok=1, attn_layer_period=2,
        attn_layer_offset=1, expert_layer_period=2, expert_layer_offset=1, mamba_d_state=4,
        mamba_dt_rank=4, use_mamba_kernels=False)),
    Family("qwen3_next", "gated linear attention layers", _cfg(
        "Qwen3NextConfig", head_dim=8, linear_num_value_heads=2, linear_num_key_heads=2,
        linear_key_head_dim=8, linear_value_head_dim=8, num_experts=4, num_experts_per_tok=2,
        moe_intermediate_size=24, shared_expert_intermediate_size=24,
        layer_types=["linear_attention", "full_attention"])),
]


def by_name(name: str) -> Family:
    for family in FAMILIES + REFUSED:
        if family.name == name:
            return family
    raise KeyError(name)
