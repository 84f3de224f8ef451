"""The router's load-balancing loss of mixture-of-experts models, over a packed batch.

Like TRL (``router_aux_loss_coef`` × the model's ``aux_loss``), the loss is the family's own
``load_balancing_loss_func`` from transformers, so each family keeps its formula. It is computed
on real tokens only: padding is masked out, and a prompt shared by K responses counts once, as
the tokens the model actually routed.
"""

from __future__ import annotations

import sys

import torch

from prefalign.engine.attention import UnsupportedModelError


def _num_experts(config) -> int | None:
    for name in ("num_local_experts", "num_experts", "n_routed_experts"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def loss_function(base):
    """The family's load-balancing function, or `UnsupportedModelError` if it has none."""
    fn = getattr(sys.modules.get(type(base).__module__), "load_balancing_loss_func", None)
    if fn is None or _num_experts(base.config) is None:
        raise UnsupportedModelError(
            f"{base.config.model_type}: transformers defines no router load-balancing loss for "
            "this model, so a router auxiliary loss cannot be added (set router_aux_loss_coef "
            "to 0)")
    return fn


def router_aux_loss(base, router_logits, real_tokens: torch.Tensor) -> torch.Tensor:
    """Load-balancing loss of ``router_logits`` (one [R*L, experts] tensor per MoE layer) over
    the tokens where ``real_tokens`` [R, L] is True."""
    fn = loss_function(base)
    config = base.config
    logits = tuple(t for t in router_logits if t is not None)
    return fn(logits, _num_experts(config), getattr(config, "num_experts_per_tok", 2),
              real_tokens.long())
