"""Which attention each layer of a model uses, so the packed layout can hand each its own mask.

Transformers models take a 4-D mask as given, so the packed forward must build every mask a
model's layers need (see masks.py). Models come in two shapes (transformers >= 4.54):

- *mapping* models (Gemma-2/3, Qwen2/3, Cohere-2, GPT-OSS, ...) accept a dict from layer type
  (``config.layer_types``: ``full_attention``, ``sliding_attention``, ``chunked_attention``) to
  mask, and each layer takes the mask of its type;
- *single-mask* models (Llama, Mistral, Mixtral, Phi-3, StarCoder2, ...) apply one mask to every
  layer: causal, or causal with ``config.sliding_window`` when the model builds a sliding mask.

Anything else (linear attention or state-space layers, bidirectional attention, a mask built in a
way not listed here) cannot be packed exactly, so `attention_plan` refuses it up front with the
reason, instead of training on log-probs that silently differ from the model's own.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass

from prefalign.engine.masks import FULL, AttentionKind

KERNELS = ("sdpa", "eager", "flex_attention", "prefalign_varlen")


class UnsupportedModelError(ValueError):
    """The model cannot be run exactly in the packed, prefix-shared layout."""


@dataclass(frozen=True)
class AttentionPlan:
    """The masks a model needs: one per layer type (``mapping``) or one for every layer."""

    kinds: dict[str, AttentionKind]  # layer type -> kind; a single-mask model has one entry
    mapping: bool
    # rows must stay under this many tokens to be exact (a layer that uses physical positions
    # whose effect is nil below it), with the reason
    max_row_length: int | None = None
    row_limit_reason: str = ""

    def check_row_length(self, length: int) -> None:
        if self.max_row_length is not None and length > self.max_row_length:
            raise UnsupportedModelError(
                f"{self.row_limit_reason}; packed rows must stay within {self.max_row_length} "
                f"tokens to be exact, and this batch has a row of {length} (lower --row-tokens "
                "or --max-length)")

    def describe(self) -> str:
        return ", ".join(f"{t}: {k.describe()}" for t, k in self.kinds.items())


_MAPPING = re.compile(r"isinstance\(\s*(?:\w+\s*:=\s*)?attention_mask\s*,\s*dict\s*\)")


@functools.lru_cache(maxsize=None)
def _forward_source(cls: type) -> str:
    try:
        return inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return ""


def _kind(layer_type: str, config, family: str) -> AttentionKind:
    if layer_type == "full_attention":
        return FULL
    if layer_type == "sliding_attention":
        window = getattr(config, "sliding_window", None)
        return AttentionKind(window=int(window)) if window else FULL
    if layer_type == "chunked_attention":
        chunk = getattr(config, "attention_chunk_size", None)
        return AttentionKind(chunk=int(chunk)) if chunk else FULL
    raise UnsupportedModelError(
        f"{family}: layers of type {layer_type!r} cannot be run in the packed, prefix-shared "
        "layout exactly (only full, sliding-window and chunked attention can); train it with a "
        "padded per-sequence trainer, or pick a model whose layers all use attention")


# Families whose layers use *physical* token positions somewhere the layout cannot reach (the
# model builds it from the row, not from position_ids or the mask): refused with the reason.
_PHYSICAL_POSITIONS = {
    "bloom": lambda c: "its ALiBi biases are built from physical token positions",
    "mpt": lambda c: "its ALiBi biases are built from physical token positions",
    "falcon": lambda c: getattr(c, "alibi", False) and "its ALiBi biases (alibi=True) are built "
                        "from physical token positions",
    "gpt_neo": lambda c: "local" in (getattr(c, "attention_layers", None) or []) and
                         "its local-attention layers apply their window by physical index "
                         "inside the layer",
}


def unwrap(model):
    """The transformers model under a PEFT wrapper (adapters stay active: they live in place)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def decoder_body(base):
    """The decoder stack of a causal LM (the part before the LM head)."""
    body = base.get_decoder()
    if body is base:  # some classes (Llama-4 text) do not report theirs
        for name in ("model", "transformer", base.base_model_prefix):
            child = getattr(base, name, None)
            if child is not None and child is not base:
                return child
    return body


def attention_plan(model) -> AttentionPlan:
    """The attention plan of a transformers causal LM (unwrapped from PEFT), or
    `UnsupportedModelError` naming why it cannot be packed exactly."""
    base = unwrap(model)
    config = base.config
    family = getattr(config, "model_type", type(base).__name__)
    physical = _PHYSICAL_POSITIONS.get(family, lambda c: None)(config)
    if physical:
        raise UnsupportedModelError(
            f"{family}: {physical}, so a response placed after another one in the packed row "
            "would not see what it sees alone; prefalign packs only models whose positions come "
            "from position_ids (RoPE or learned absolute positions)")
    if getattr(config, "use_bidirectional_attention", False):
        raise UnsupportedModelError(
            f"{family}: this model attends bidirectionally (use_bidirectional_attention=True), "
            "so it is not a causal LM; preference training needs a causal decoder")
    if getattr(base, "_is_stateful", False):
        raise UnsupportedModelError(
            f"{family}: its recurrent (state-space or linear-attention) layers carry state along "
            "the sequence, which packing would leak across examples and from one response into "
            "the next; train it with a padded per-sequence trainer")
    decoder = decoder_body(base)
    source = _forward_source(type(decoder))
    layer_types = list(getattr(config, "layer_types", None) or [])
    if _MAPPING.search(source):
        types = dict.fromkeys(layer_types or ["full_attention"])
        plan = AttentionPlan({t: _kind(t, config, family) for t in types}, mapping=True)
        return _with_row_limit(plan, config, family)
    if len(set(layer_types)) > 1:
        raise UnsupportedModelError(
            f"{family}: its layers mix attention types ({', '.join(sorted(set(layer_types)))}) "
            "but the model takes a single mask for all of them, so per-layer masks cannot be "
            "given exactly")
    for t in set(layer_types):
        _kind(t, config, family)  # refuses non-attention layer types
    if "create_chunked_causal_mask" in source:
        raise UnsupportedModelError(
            f"{family}: builds a chunked attention mask for all layers, which prefalign does not "
            "pass through a single mask yet")
    window = getattr(config, "sliding_window", None)
    if "create_sliding_window_causal_mask" in source and window:
        return AttentionPlan({"sliding_attention": AttentionKind(window=int(window))},
                             mapping=False)
    if "create_causal_mask" in source:
        return AttentionPlan({"full_attention": FULL}, mapping=False)
    raise UnsupportedModelError(
        f"{family}: {type(decoder).__name__} builds its attention mask in a way prefalign does "
        "not recognise (no transformers mask helper in its forward), so the packed layout cannot "
        "be verified to be exact for it")


def _with_row_limit(plan: AttentionPlan, config, family: str) -> AttentionPlan:
    # Llama-4 scales the queries of its NoPE layers by log1p(floor((i + 1) / floor_scale)) of the
    # *physical* index i in the row: 0 (no change) for every i < floor_scale - 1.
    no_rope = getattr(config, "no_rope_layers", None) or []
    if getattr(config, "attn_temperature_tuning", False) and 0 in no_rope:
        scale = int(getattr(config, "floor_scale", 8192))
        return AttentionPlan(plan.kinds, plan.mapping, max_row_length=scale - 1,
                             row_limit_reason=f"{family}: the attention temperature of its NoPE "
                             "layers follows physical token positions")
    return plan


def check_varlen(model, plan: AttentionPlan) -> None:
    """Refuse what the padding-free varlen kernel cannot do exactly (it takes a causal window
    only, no chunks, no score soft-capping, no attention sinks)."""
    base = unwrap(model)
    family = getattr(base.config, "model_type", type(base).__name__)
    reasons = []
    if any(k.chunk is not None for k in plan.kinds.values()):
        reasons.append("chunked attention")
    if getattr(base.config, "attn_logit_softcapping", None):
        reasons.append("attention-score soft-capping")
    if any(name.rsplit(".", 1)[-1] == "sinks" for name, _ in base.named_parameters()):
        reasons.append("attention sinks")
    if reasons:
        raise UnsupportedModelError(
            f"{family}: the varlen attention kernel has no {' or '.join(reasons)}; use "
            "attn_implementation 'auto' (dense masks)")


def check_kernel(model) -> str:
    """The model's attention implementation, if the packed layout can take it."""
    impl = getattr(unwrap(model).config, "_attn_implementation", None) or "eager"
    if impl not in KERNELS:
        raise UnsupportedModelError(
            f"attention implementation {impl!r} cannot take the block-diagonal prefix-sharing "
            "mask; load the model with attn_implementation='sdpa' or 'eager' (CPU/GPU) or "
            "'flex_attention' (GPU)")
    return impl
