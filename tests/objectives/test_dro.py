"""DRO: hand values on asymmetric single-trajectory rows, the rewards from labels or a reward
column, and the paper's identity: the policy's and the value's own losses have the gradients
of one squared loss ½(r − V − β·ρ)² (the policy's divided by β), both zero at its optimum."""

import pytest
import torch

from prefalign.objectives import UnpairedBatch, compute_unpaired, run

P = [-3.0, -5.5, -2.2, -7.0]
R = [-3.4, -5.0, -2.2, -6.1]
V = [0.2, -0.4, 0.9, 0.0]
LABELS = [True, False, True, False]


def t(values):
    return torch.tensor(values, dtype=torch.float64)


def _hand(beta, rewards):
    out = []
    for p, ref, v, r in zip(P, R, V, rewards):
        rho = p - ref
        out.append(-(r - v) * p + 0.5 * beta * rho ** 2 + 0.5 * (r - v - beta * rho) ** 2)
    return out


def test_dro_against_hand_values_with_rewards_from_labels_and_from_feedback():
    labels = torch.tensor(LABELS)
    got = compute_unpaired("dro", t(P), labels, t(R), values=t(V), beta=0.5)
    assert got.tolist() == pytest.approx(_hand(0.5, [1.0, 0.0, 1.0, 0.0]), abs=1e-12)
    feedback = [0.7, -0.3, 4.0, 1.5]  # a reward column wins over the labels
    got = compute_unpaired("dro", t(P), labels, t(R), values=t(V), feedback=t(feedback), beta=0.5)
    assert got.tolist() == pytest.approx(_hand(0.5, feedback), abs=1e-12)


def test_the_gradients_are_the_squared_losss():
    beta, r = 0.3, t([1.0, 0.0, 1.0, 0.0])
    policy, values = t(P).requires_grad_(), t(V).requires_grad_()
    out = run("dro", UnpairedBatch(policy, torch.tensor(LABELS), t(R), values=values),
              {"beta": beta})
    out.losses.sum().backward()
    p2, v2 = t(P).requires_grad_(), t(V).requires_grad_()
    (0.5 * (r - v2 - beta * (p2 - t(R))) ** 2).sum().backward()
    assert torch.allclose(policy.grad, p2.grad / beta, atol=1e-12)
    assert torch.allclose(values.grad, v2.grad, atol=1e-12)
    assert set(out.parts) == {"policy", "value"}
    # at the optimum β·ρ = r − V neither moves
    p3 = (t(R) + (r - t(V)) / beta).requires_grad_()
    v3 = t(V).requires_grad_()
    run("dro", UnpairedBatch(p3, torch.tensor(LABELS), t(R), values=v3),
        {"beta": beta}).losses.sum().backward()
    assert float(p3.grad.abs().max()) < 1e-12 and float(v3.grad.abs().max()) < 1e-12


def test_refused_without_values():
    with pytest.raises(ValueError, match="values"):
        compute_unpaired("dro", t(P), torch.tensor(LABELS), t(R), beta=0.5)
