"""Soft labels. soft_sigmoid (OSP's soft-preference cross-entropy): hand values on asymmetric
pairs, the identities with DPO and cDPO, the optimum at the log-odds of p, and training from a
strength column (refused, naming the row, without one); sppo_soft: sppo_hard at p = 1, a
regression to 0 at p = 1/2 (its hand values: test_values_asymmetric.py)."""

import json
import math

import pytest
import torch

from prefalign.objectives import compute

PW, PL = [-1.0, -2.0, -3.0], [-1.5, -1.0, -4.0]
RW, RL = [-1.2, -2.5, -2.0], [-1.1, -1.3, -3.5]


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


def _log_sigmoid(x):
    return -math.log1p(math.exp(-x))


def test_soft_sigmoid_against_hand_values():
    beta, p = 0.5, [1.0, 0.7, 0.5]
    expected = []
    for pw, pl, rw, rl, q in zip(PW, PL, RW, RL, p):
        z = beta * ((pw - rw) - (pl - rl))
        expected.append(-(q * _log_sigmoid(z) + (1 - q) * _log_sigmoid(-z)))
    # pair 0: Δ = 0.2 − (−0.4) = 0.6, z = 0.3: log(1 + e^−0.3) = 0.55436
    assert expected[0] == pytest.approx(0.554355, abs=1e-6)
    got = compute("soft_sigmoid", t(*PW), t(*PL), t(*RW), t(*RL), beta=beta, strength=t(*p))
    assert got.tolist() == pytest.approx(expected, abs=1e-12)


def test_identities_with_dpo_and_cdpo_and_the_optimum():
    args = (t(*PW), t(*PL), t(*RW), t(*RL))
    ones = t(1.0, 1.0, 1.0)
    assert torch.allclose(compute("osp", *args, beta=0.3, strength=ones),
                          compute("sigmoid", *args, beta=0.3))
    eps = 0.2  # cDPO with ε: every pair at p = 1 − ε
    assert torch.allclose(compute("soft_sigmoid", *args, beta=0.3, strength=ones * (1 - eps)),
                          compute("cdpo", *args, beta=0.3, label_smoothing=eps))
    # the gradient in z is σ(z) − p: zero at z = log(p / (1 − p))
    p = 0.8
    z = torch.tensor([math.log(p / (1 - p))], dtype=torch.float64, requires_grad=True)
    loss = compute("soft_sigmoid", z, t(0.0), t(0.0), t(0.0), beta=1.0, strength=t(p))
    loss.sum().backward()
    assert abs(float(z.grad)) < 1e-12


def test_sppo_soft_at_certainty_is_sppo_hard():
    args = (t(*PW), t(*PL), t(*RW), t(*RL))
    assert torch.allclose(compute("sppo_soft", *args, beta=0.4, strength=t(1.0, 1.0, 1.0)),
                          compute("sppo_hard", *args, beta=0.4))
    # p = 1/2: both log-ratios regress to 0
    half = compute("sppo_soft", *args, beta=0.4, strength=t(0.5, 0.5, 0.5))
    expected = [((pw - rw) ** 2 + (pl - rl) ** 2) for pw, pl, rw, rl in zip(PW, PL, RW, RL)]
    assert half.tolist() == pytest.approx(expected, abs=1e-12)


def test_a_strength_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\].*rows \[1\]"):
        compute("soft_sigmoid", t(*PW), t(*PL), t(*RW), t(*RL), strength=t(0.5, 1.5, 0.0))
    with pytest.raises(ValueError, match="strength"):
        compute("soft_sigmoid", t(*PW), t(*PL), t(*RW), t(*RL))


def test_training_reads_each_pairs_strength(tiny_model_dir, tmp_path):
    """Step 1 (policy = reference, Δ = 0): every pair's loss is log 2 whatever p; step 2 moves
    each pair's margin toward log(p / (1 − p)), so pairs at p = 1/2 barely move."""
    from prefalign.train import TrainConfig, train

    rows = [{"prompt": f"{i}+{i}=", "chosen": str(2 * i), "rejected": str(2 * i + 1),
             "strength": [0.9, 0.6, 1.0, 0.5][i - 1]} for i in range(1, 5)]
    data = tmp_path / "soft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = dict(model=str(tiny_model_dir("llama")), data=str(data), objective="soft_sigmoid",
               batch_size=4, max_steps=2, lr=1e-2, progress=False,
               cache_dir=str(tmp_path / "cache"))
    train(TrainConfig(**cfg, output=str(tmp_path / "a")))
    first = json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["loss"] == pytest.approx(math.log(2), rel=1e-5)
    # the same pairs at p = 1 train as DPO does
    certain = tmp_path / "certain.jsonl"
    certain.write_text("".join(json.dumps({**r, "strength": 1.0}) + "\n" for r in rows))
    train(TrainConfig(**{**cfg, "data": str(certain)}, output=str(tmp_path / "b")))
    train(TrainConfig(**{**cfg, "data": str(certain), "objective": "sigmoid"},
                      output=str(tmp_path / "c")))
    b, c = ([json.loads(x)["loss"] for x in (tmp_path / r / "metrics.jsonl").read_text()
             .splitlines()] for r in "bc")
    assert b == pytest.approx(c, rel=1e-6)
    # a pair without a strength is refused, naming its row
    rows[2].pop("strength")
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"soft.jsonl, line 3: objective 'soft_sigmoid' needs "
                                         r"each pair's strength column"):
        train(TrainConfig(**cfg, output=str(tmp_path / "d")))
