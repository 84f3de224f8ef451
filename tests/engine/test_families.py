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

KERNELS = ["sdpa", "eager", "flex_attention", "varlen"]
# what the padding-free varlen kernel refuses, and why (chunks, score soft-capping, sinks, and
# attention layers that do not run the plan, however a transformers release lets them fail to)
NO_PLAN = "its attention layers do not take the varlen kernel's index plan"
VARLEN_REFUSED = {"llama4_text": "chunked", "gemma2": "soft-capping", "gpt_oss": "sinks",
                  "stablelm": NO_PLAN, "falcon": NO_PLAN}


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

    from prefalign.engine.loading import resolve_attn_implementation

    config = family.config()
    impl = resolve_attn_implementation(config, impl)  # registers varlen
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


def _skip_unsupported_kernel(family, impl, tmp_path):
    if impl == "varlen" and family.name in VARLEN_REFUSED:
        from prefalign.engine.loading import check_model

        family.config().save_pretrained(tmp_path / family.name)
        with pytest.raises(UnsupportedModelError, match=VARLEN_REFUSED[family.name]):
            # as the trainer does: the check before loading, then the first (head-check) batch
            check_model(tmp_path / family.name, attn_implementation=impl)
            PackedLogProbModel(build(family, impl))(pack(examples_longer_than_the_window(0)))
        pytest.skip(f"n/a: {family.name} is refused by the varlen kernel (checked)")
    if impl == "flex_attention" and not torch.cuda.is_available():
        pytest.skip("FlexAttention training needs CUDA")
    if impl == "sdpa":
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        cls = MODEL_FOR_CAUSAL_LM_MAPPING[type(family.config())]
        if not getattr(cls, "_supports_sdpa", True):
            pytest.skip(f"{family.name} does not support SDPA in transformers (n/a)")


@pytest.mark.parametrize("impl", KERNELS)
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_packed_logps_and_gradients_equal_plain_forward(family, impl, tmp_path):
    _skip_unsupported_kernel(family, impl, tmp_path)
    model = build(family, impl)
    device = "cuda" if impl == "flex_attention" else "cpu"
    model.to(device)
    examples = examples_longer_than_the_window(seed=len(family.name))
    packed = PackedLogProbModel(model, chunk_tokens=11)
    batch = packed.pack(examples, row_capacity=64).to(device)  # as training lays it out
    assert batch.input_ids.shape[0] < len(examples), "examples should share rows"
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


def plain_router_logits(model, examples):
    """Per MoE layer, the router logits of every real token the packed batch holds, from plain
    forwards: each prompt once (from its first response's forward), then each response."""
    body = model.model
    per_layer = None
    for ex in examples:
        for k, resp in enumerate(ex.responses):
            ids = torch.tensor([list(ex.prompt_ids) + list(resp)])
            logits = body(input_ids=ids, output_router_logits=True, use_cache=False).router_logits
            keep = slice(0, None) if k == 0 else slice(len(ex.prompt_ids), None)
            rows = [t[keep] for t in logits]
            per_layer = rows if per_layer is None else [
                torch.cat([a, b]) for a, b in zip(per_layer, rows)]
    return tuple(per_layer)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f.moe and f.name in (
    "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "gpt_oss", "granitemoe", "phimoe", "jetmoe")],
    ids=lambda f: f.name)
def test_router_aux_loss_counts_real_tokens_once(family):
    import sys

    from prefalign.engine.moe import _num_experts

    model = build(family, "eager")
    examples = examples_longer_than_the_window(seed=5)
    batch = pack(examples, row_capacity=64, pad_to_multiple_of=16)
    assert (batch.segment_ids < 0).any(), "the batch should hold padding"
    fast = PackedLogProbModel(model, router_aux_loss=True)(batch).aux_loss
    fn = sys.modules[type(model).__module__].load_balancing_loss_func
    config = model.config
    expected = fn(plain_router_logits(model, examples), _num_experts(config),
                  config.num_experts_per_tok, None)
    torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-7)
    # the check can fail: the same packed router logits with the padding counted differ
    packed = PackedLogProbModel(model)
    out = model.model(input_ids=batch.input_ids, position_ids=batch.position_ids,
                      attention_mask=packed._attention_mask(batch), use_cache=False,
                      output_router_logits=True)
    counted = fn(out.router_logits, _num_experts(config), config.num_experts_per_tok, None)
    assert not torch.allclose(counted, expected, rtol=1e-4, atol=0)


def test_router_aux_loss_is_refused_for_a_family_without_one():
    from transformers import AutoModelForCausalLM

    from prefalign.engine.families import by_name

    model = AutoModelForCausalLM.from_config(by_name("llama").config())
    with pytest.raises(UnsupportedModelError, match="load-balancing"):
        PackedLogProbModel(model, router_aux_loss=True)


def test_llama4_temperature_tuning_limits_the_row_length():
    """Llama-4's NoPE layers scale queries by physical position; exact (and allowed) only in
    rows shorter than floor_scale, refused past it, and the refusal is needed."""
    from prefalign.engine.families import by_name

    family = by_name("llama4_text")
    model = build(family, "eager")
    model.config.floor_scale = 6
    for layer in model.model.layers:
        layer.self_attn.floor_scale = 6
    examples = examples_longer_than_the_window(seed=2)
    with pytest.raises(UnsupportedModelError, match="within 5 tokens"):
        PackedLogProbModel(model)(pack(examples))
    short = [Example([5], [[6], [7, 8]]), Example([9, 10], [[11]])]
    with torch.no_grad():
        fast = PackedLogProbModel(model)(pack(short))
        plain = plain_sequence_logps(model, short)
    torch.testing.assert_close(fast.logps[fast.lengths > 0], plain[fast.lengths > 0])
    packed = PackedLogProbModel(model)
    packed._plan = attention_plan(model).__class__(packed.plan.kinds, packed.plan.mapping)
    with torch.no_grad():  # without the limit, long rows give other log-probs
        unchecked = packed(pack(examples)).logps
        plain = plain_sequence_logps(model, examples)
    mask = pack(examples).response_mask
    assert (unchecked - plain)[mask].abs().max() > 1e-4


def test_an_unknown_logit_transform_is_refused(monkeypatch):
    """A family whose head does something the engine does not apply is caught by the head
    check (here: Granite's logits_scaling, with the engine's knowledge of it switched off)."""
    from prefalign.engine import forward
    from prefalign.engine.families import by_name

    model = build(by_name("granite"), "sdpa")
    with torch.no_grad():  # logits of a trained model's size, so the scale matters
        model.lm_head.weight.mul_(50)
    forward.PackedLogProbModel(model).verify_head()  # known: passes
    monkeypatch.setattr(forward, "head_transform", lambda config: (1.0, None))
    with pytest.raises(UnsupportedModelError, match="does not reproduce the model's own logits"):
        forward.PackedLogProbModel(model)(pack(examples_longer_than_the_window(1)))


def test_docs_models_page_covers_every_family():
    """docs/models.md is generated by scripts/models_matrix.py; regenerate it when this fails."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "models.md").read_text()
    rows = {line.split("|")[1].strip() for line in page.splitlines() if line.startswith("| ")}
    missing = {f.name for f in FAMILIES + REFUSED} - rows
    assert not missing, f"docs/models.md lacks {sorted(missing)}: run scripts/models_matrix.py"
    assert "✗" not in page
