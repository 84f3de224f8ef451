"""Conformance matrix: for every family in prefalign.engine.families, with its distinctive
feature switched on, the packed, prefix-shared forward gives the log-probs and parameter
gradients of one plain forward per sequence (fp32), on SDPA and eager (FlexAttention on CUDA).
Families that cannot be served exactly are refused before any work.

``scripts/models_matrix.py`` runs this file and writes docs/models.md from its results.
"""

import random
from dataclasses import dataclass

import pytest
import torch

from prefalign.engine.attention import UnsupportedModelError, attention_plan
from prefalign.engine.families import FAMILIES, REFUSED, VOCAB, WINDOW
from prefalign.engine.forward import PackedLogProbModel, plain_sequence_logps
from prefalign.engine.layout import pack

KERNELS = ["sdpa", "eager", "flex_attention"]


@dataclass
class Example:
    prompt_ids: list
    responses: list
    index: int = 0


def examples_longer_than_the_window(seed, n=5):
    """Prompts and responses long enough that windows and chunks cut into both."""
    rnd = random.Random(seed)
    ids = lambda k: [rnd.randrange(3, VOCAB) for _ in range(k)]  # noqa: E731
    out = [Example(ids(rnd.randint(WINDOW + 1, 3 * WINDOW)),
                   [ids(rnd.randint(1, 2 * WINDOW + 2)) for _ in range(rnd.choice((1, 2, 3)))], i)
           for i in range(n)]
    out[0].prompt_ids = ids(1)  # and one whose prompt is a single token
    return out


def build(family, impl):
    from transformers import AutoModelForCausalLM

    config = family.config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, attn_implementation=impl,
                                                 dtype=torch.float32)
    # random init leaves some families' norms and biases at exactly 0/1; perturb every
    # parameter so each feature (biases, norms, sinks, router) affects the output
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


def _skip_unsupported_kernel(family, impl):
    if impl == "flex_attention" and not torch.cuda.is_available():
        pytest.skip("FlexAttention training needs CUDA")
    if impl == "sdpa":
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        cls = MODEL_FOR_CAUSAL_LM_MAPPING[type(family.config())]
        if not getattr(cls, "_supports_sdpa", True):
            pytest.skip(f"{family.name} does not support SDPA in transformers (n/a)")


@pytest.mark.parametrize("impl", KERNELS)
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_packed_logps_and_gradients_equal_plain_forward(family, impl):
    _skip_unsupported_kernel(family, impl)
    model = build(family, impl)
    device = "cuda" if impl == "flex_attention" else "cpu"
    model.to(device)
    examples = examples_longer_than_the_window(seed=len(family.name))
    batch = pack(examples, row_capacity=64).to(device)
    assert batch.input_ids.shape[0] < len(examples), "examples should share rows"
    packed = PackedLogProbModel(model, chunk_tokens=11)
    fast = packed(batch)
    plain = plain_sequence_logps(model, examples)
    mask = batch.response_mask
    torch.testing.assert_close(fast.logps[mask], plain[mask], rtol=1e-5, atol=1e-5)

    weights = torch.randn(plain.shape, generator=torch.Generator().manual_seed(1)) * mask.cpu()
    weights = weights.to(device)
    model.zero_grad()
    (fast.logps * weights).sum().backward()
    fast_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    (plain * weights).sum().backward()
    plain_grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert fast_grads.keys() == plain_grads.keys()
    for name, g in plain_grads.items():
        torch.testing.assert_close(fast_grads[name], g, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("family", [f for f in FAMILIES if "window" in f.features],
                         ids=lambda f: f.name)
def test_windows_matter_in_these_configs(family):
    """The check above can fail: a mask without the windows gives other log-probs."""
    impl = "eager"
    model = build(family, impl)
    examples = examples_longer_than_the_window(seed=3)
    batch = pack(examples, row_capacity=64)
    packed = PackedLogProbModel(model)
    plan = packed.plan
    assert any(k.window == WINDOW for k in plan.kinds.values()), plan
    from prefalign.engine.attention import AttentionPlan
    from prefalign.engine.masks import FULL

    packed._plan = AttentionPlan({t: FULL for t in plan.kinds}, mapping=plan.mapping)
    with torch.no_grad():
        windowless = packed(batch).logps
        plain = plain_sequence_logps(model, examples)
    assert (windowless - plain)[batch.response_mask].abs().max() > 1e-3


@pytest.mark.parametrize("family", REFUSED, ids=lambda f: f.name)
def test_families_that_cannot_be_packed_exactly_are_refused(family):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(family.config())
    with pytest.raises(UnsupportedModelError, match=family.name):
        attention_plan(model)
