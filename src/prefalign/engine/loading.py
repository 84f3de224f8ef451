"""Loading a causal LM for prefalign: one attention choice for train, eval and synth, and the
exactness check before any work.

``attn_implementation="auto"`` (the default everywhere) picks SDPA where the family supports it
and eager attention otherwise (Gemma-2 and GPT-OSS refuse SDPA: soft-capping, attention sinks).
An explicit choice is checked against what the packed layout can take (sdpa, eager,
flex_attention) and against what the family supports, with a one-line reason if not.
"""

from __future__ import annotations

import torch

from prefalign.engine import varlen
from prefalign.engine.attention import KERNELS, UnsupportedModelError, attention_plan, check_varlen

AUTO = "auto"


def _causal_lm_class(config):
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    try:
        return MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    except KeyError:
        return None  # remote code: the class is only known once loaded


def model_config(path, *, trust_remote_code: bool = False):
    """The config of a model folder, or of the base model of a PEFT adapter folder."""
    import json
    from pathlib import Path

    from transformers import AutoConfig

    adapter = Path(path) / "adapter_config.json"
    if adapter.is_file() and not (Path(path) / "config.json").is_file():
        base = json.loads(adapter.read_text()).get("base_model_name_or_path")
        if base:
            path = base
    return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)


def resolve_attn_implementation(config, requested: str | None = AUTO) -> str:
    """The attention implementation to load ``config``'s model with."""
    requested = requested or AUTO
    if requested in ("varlen", varlen.NAME):
        varlen.register()
        return varlen.NAME
    cls = _causal_lm_class(config)
    sdpa_ok = cls is None or getattr(cls, "_supports_sdpa", True)
    family = getattr(config, "model_type", "this model")
    if requested == AUTO:
        return "sdpa" if sdpa_ok else "eager"
    if requested not in KERNELS:
        raise UnsupportedModelError(
            f"attention implementation {requested!r} cannot take the packed, prefix-sharing "
            f"masks; choose auto, sdpa, eager, flex_attention or varlen")
    if requested == "sdpa" and not sdpa_ok:
        raise UnsupportedModelError(
            f"{family} does not support attn_implementation 'sdpa' in transformers; use 'eager' "
            "(or 'auto', which picks it)")
    if requested == "flex_attention" and cls is not None and not getattr(
            cls, "_supports_flex_attn", False):
        raise UnsupportedModelError(
            f"{family} does not support attn_implementation 'flex_attention' in transformers; "
            "use 'auto'")
    return requested


def check_model(path, *, trust_remote_code: bool = False, attn_implementation: str = AUTO,
                router_aux_loss: bool = False) -> str:
    """Refuse, before any work, a model the packed engine cannot run exactly; returns the
    attention implementation to load it with. Builds the model on the meta device (no weights
    are read)."""
    from transformers import AutoModelForCausalLM

    config = model_config(path, trust_remote_code=trust_remote_code)
    impl = resolve_attn_implementation(config, attn_implementation)
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code,
                                                     attn_implementation=impl)
    except (KeyError, ValueError) as err:  # a family without that attention in transformers
        family = getattr(config, "model_type", "this model")
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        if impl == varlen.NAME:
            raise varlen.refusal(family, f"transformers cannot load it with custom attention: "
                                         f"{first}") from None
        if isinstance(err, ValueError):
            raise
        raise UnsupportedModelError(f"{family} has no {impl!r} attention ({first}); use "
                                    "attn_implementation 'auto'") from None
    plan = attention_plan(model)
    if impl == varlen.NAME:
        check_varlen(model, plan)
    if router_aux_loss:
        from prefalign.engine.moe import loss_function

        loss_function(model)
    return impl


def load_causal_lm(path, *, dtype=torch.float32, attn_implementation: str = AUTO,
                   trust_remote_code: bool = False, **kwargs):
    """``AutoModelForCausalLM.from_pretrained`` with the attention choice resolved."""
    from transformers import AutoModelForCausalLM

    config = model_config(path, trust_remote_code=trust_remote_code)
    impl = resolve_attn_implementation(config, attn_implementation)
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=impl,
                                                trust_remote_code=trust_remote_code, **kwargs)


def check_same_tokenizer(policy, reference, *, policy_tokenizer=None,
                         trust_remote_code: bool = False, flags=("--model", "--ref-model")) -> None:
    """Refuse (ValueError, one line) a reference model whose tokenizer differs from the
    policy's: the reference scores the policy's token ids, so each id must mean the same token
    (same vocabulary) and fit the reference's embedding table. Chat templates may differ."""
    from transformers import AutoTokenizer

    if policy_tokenizer is None:
        policy_tokenizer = AutoTokenizer.from_pretrained(policy, trust_remote_code=trust_remote_code)
    try:
        ref_tokenizer = AutoTokenizer.from_pretrained(reference, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"{flags[1]} {reference}: its tokenizer could not be loaded "
                         f"({first[:200]})") from None
    pv, rv = policy_tokenizer.get_vocab(), ref_tokenizer.get_vocab()
    if pv != rv:
        diff = sum(1 for tok, i in pv.items() if rv.get(tok) != i) + len(set(rv) - set(pv))
        raise ValueError(f"{flags[1]} {reference} has another tokenizer than {flags[0]} {policy} "
                         f"(vocabularies of {len(rv)} and {len(pv)} tokens, {diff} differing); "
                         "the reference scores the policy's token ids, so both must use the same "
                         "tokenizer")
    config = model_config(reference, trust_remote_code=trust_remote_code)
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    size = getattr(config, "vocab_size", None)
    needed = max(pv.values(), default=-1) + 1
    if isinstance(size, int) and size < needed:
        raise ValueError(f"{flags[1]} {reference}: its embedding table has {size} rows but "
                         f"{flags[0]} {policy}'s tokenizer uses ids up to {needed - 1}")
