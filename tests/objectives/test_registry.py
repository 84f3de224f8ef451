"""The registry: every entry complete and callable; aliases; the printable table."""

import inspect

import pytest
import torch

from prefalign.objectives import available, compute, compute_listwise, compute_unpaired, get, table_text

REQUIRED = {
    "sigmoid", "cdpo", "robust", "ipo", "hinge", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm", "odpo", "beta_dpo", "dpop", "rpo", "wpo",
    "ld_dpo", "simpo", "cpo", "orpo", "asft", "kto", "bco", "npo", "sft", "lipo_lambda", "plackett_luce",
    "tdpo1", "tdpo2", "apo_zero_unpaired",
}


def test_all_required_objectives_are_registered():
    assert REQUIRED <= {o.name for o in available()}


@pytest.mark.parametrize("alias,name", [
    ("dpo", "sigmoid"), ("slic", "hinge"), ("ln_dpo", "sigmoid_norm"), ("robust_dpo", "robust"),
    ("tdpo", "tdpo2"), ("lipo", "lipo_lambda"), ("listwise_dpo", "plackett_luce"), ("DPO", "sigmoid"),
    ("f-dpo", "sigmoid"), ("conservative_dpo", "cdpo"),
])
def test_aliases_resolve(alias, name):
    assert get(alias).name == name


@pytest.mark.parametrize("entry", available(), ids=lambda o: o.name)
def test_entry_metadata_is_complete(entry):
    assert entry.formula and entry.paper and entry.summary
    assert entry.shape in ("pairwise", "unpaired", "listwise", "sft")
    assert isinstance(entry.needs_reference, bool)
    doc = inspect.getdoc(entry.fn)
    assert doc and len(doc.split("\n\n")) >= 2, "docstring needs the formula and an intuition paragraph"
    for h in entry.hyperparameters:
        assert h.description
        assert h.check(entry.name, h.default) == h.default


def test_trl_names_are_canonical_names():
    for o in available():
        if o.trl_name:
            assert o.trl_name == o.name


def test_paper_titles_follow_the_catalog():
    assert get("sigmoid").paper == "Direct Preference Optimization: Your Language Model is Secretly a Reward Model"
    assert get("simpo").paper == "SimPO: Simple Preference Optimization with a Reference-Free Reward"
    assert get("odpo").paper == "Direct Preference Optimization with an Offset"
    assert get("lipo").paper == "LiPO: Listwise Preference Optimization through Learning-to-Rank"
    assert get("tdpo").paper == "Token-level Direct Preference Optimization"


def test_table_lists_every_objective_with_reference_and_shape():
    text = table_text()
    lines = text.splitlines()
    for o in available():
        row = next(line for line in lines if line.startswith(o.name + " ") or line.startswith(o.name + "  "))
        assert ("yes" if o.needs_reference else "no") in row.split()
        assert o.shape in row and o.paper in row


def _inputs_for(entry, B=3, T=4, K=3):
    g = torch.Generator().manual_seed(1)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64) - 3

    extra = {}
    for name in entry.inputs:
        if name in ("margin", "strength"):
            extra[name] = torch.rand(B, generator=g, dtype=torch.float64)
        elif name.endswith("_seq_kl"):
            extra[name] = torch.rand(B, generator=g, dtype=torch.float64)
        elif name.endswith("_mask"):
            extra[name] = torch.ones(B, T, dtype=torch.bool)
        elif "_token_" in name:
            extra[name] = r(B, T)
        elif name.startswith("ref_extra_"):  # mrpo's further references
            extra[name] = r(B, 2)
        elif name == "values":  # dro's value baseline
            extra[name] = torch.randn(B, generator=g, dtype=torch.float64)
    if entry.name == "kto":
        extra["kl"] = 0.1
    return extra


@pytest.mark.parametrize("entry", available(), ids=lambda o: o.name)
def test_every_objective_runs_and_is_differentiable(entry):
    B, K = 3, 3
    extra = _inputs_for(entry)
    policy = (torch.randn(B, dtype=torch.float64) - 5).requires_grad_()
    if entry.shape == "listwise":
        policy = (torch.randn(B, K, dtype=torch.float64) - 5).requires_grad_()
        out = compute_listwise(entry.name, policy, torch.randn(B, K, dtype=torch.float64) - 5,
                               scores=torch.rand(B, K, dtype=torch.float64), **extra)
    elif entry.shape == "unpaired" or entry.name == "sft":
        labels = None if entry.name in ("npo", "sft") else torch.tensor([True, False, True])
        out = compute_unpaired(entry.name, policy, labels, torch.randn(B, dtype=torch.float64) - 5,
                               lengths=torch.tensor([3, 4, 5]), **extra)
    else:
        out = compute(entry.name, policy, torch.randn(B, dtype=torch.float64) - 6,
                      torch.randn(B, dtype=torch.float64) - 5, torch.randn(B, dtype=torch.float64) - 6,
                      torch.tensor([3, 4, 5]), torch.tensor([2, 4, 6]), **extra)
    assert out.shape == (B,)
    assert torch.isfinite(out).all()
    if out.requires_grad:  # wpo / ld_dpo rebuild log-probs from token inputs instead
        out.sum().backward()
        assert policy.grad is not None and torch.isfinite(policy.grad).all()
    else:
        assert entry.name in ("wpo", "ld_dpo")


def test_docs_describe_every_objective():
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "objectives.md"
    text = doc.read_text(encoding="utf-8")
    for o in available():
        assert f"### `{o.name}`" in text, o.name
        assert o.paper in text, o.paper
