"""Per-pair difficulty from the reference's ranking errors, by hand."""

import pytest


def test_pair_difficulty_by_hand():
    import torch

    from prefalign.eval.metrics import pair_difficulty

    t = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    # reference margins -2, 1, -0.5, 3; policy margins 1, -1, -0.2, 2
    metrics, rows = pair_difficulty(t(-1, -2, -3, 0), t(-2, -1, -2.8, -2), t(-3, -1, -2, -1),
                                    t(-1, -2, -1.5, -4), [10, 11, 12, 13], hardest=2)
    assert metrics == {"difficulty/reference_wrong": 0.5, "difficulty/fixed": 0.5,
                       "difficulty/broken": 0.5}
    assert [(r["pair"], r["reference_margin"], r["policy_margin"], r["policy_ranks_it_right"])
            for r in rows] == [(10, -2.0, 1.0, True), (12, -0.5, pytest.approx(-0.2), False)]
