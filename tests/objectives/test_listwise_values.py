"""LiPO-λ and Plackett-Luce against their formulas evaluated by hand."""

import math

import torch

from prefalign.objectives import compute_listwise

from .hand import close, logsig, t


def _lse(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def test_plackett_luce_three_items_in_score_order():
    beta = 0.5
    rho = [0.2, 1.0, -0.4]  # log-ratios of items 0, 1, 2
    scores = [2.0, 5.0, 1.0]  # ranking: item 1, item 0, item 2
    s = [beta * r for r in rho]
    expected = -(s[1] - _lse([s[1], s[0], s[2]])) - (s[0] - _lse([s[0], s[2]]))
    out = compute_listwise("plackett_luce", t(*rho).unsqueeze(0), torch.zeros(1, 3, dtype=torch.float64),
                           scores=t(*scores).unsqueeze(0), beta=beta)
    close(out, [expected])


def test_plackett_luce_ignores_masked_items():
    beta = 0.5
    pol = torch.tensor([[0.2, 1.0, float("nan")]], dtype=torch.float64)
    ref = torch.zeros(1, 3, dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    out = compute_listwise("pl", pol, ref, scores=t(2.0, 5.0, 9.0).unsqueeze(0), mask=mask, beta=beta)
    close(out, [-logsig(beta * (1.0 - 0.2))])


def test_lipo_lambda_three_items_ranked_by_policy():
    beta = 1.0
    rho = [0.3, 0.1, 0.5]
    psi = [2.0, 1.0, 0.0]
    s = [beta * r for r in rho]
    # policy ranking by s: item 2 (rank 1), item 0 (rank 2), item 1 (rank 3)
    rank = {2: 1, 0: 2, 1: 3}
    gain = [2 ** p - 1 for p in psi]
    total = 0.0
    for i in range(3):
        for j in range(3):
            if psi[i] > psi[j]:
                w = abs(gain[i] - gain[j]) * abs(1 / math.log2(1 + rank[i]) - 1 / math.log2(1 + rank[j]))
                total += w * math.log(1 + math.exp(-(s[i] - s[j])))
    out = compute_listwise("lipo_lambda", t(*rho).unsqueeze(0), torch.zeros(1, 3, dtype=torch.float64),
                           scores=t(*psi).unsqueeze(0), beta=beta)
    close(out, [total])


def test_lipo_lambda_ranked_by_scores_variant():
    beta = 1.0
    rho = [0.3, 0.1, 0.5]
    psi = [2.0, 1.0, 0.0]
    rank = {0: 1, 1: 2, 2: 3}
    gain = [2 ** p - 1 for p in psi]
    total = 0.0
    for i in range(3):
        for j in range(3):
            if psi[i] > psi[j]:
                w = abs(gain[i] - gain[j]) * abs(1 / math.log2(1 + rank[i]) - 1 / math.log2(1 + rank[j]))
                total += w * -logsig(rho[i] - rho[j])
    out = compute_listwise("lipo", t(*rho).unsqueeze(0), torch.zeros(1, 3, dtype=torch.float64),
                           scores=t(*psi).unsqueeze(0), beta=beta, lipo_rank_by="scores")
    close(out, [total])


def test_listwise_length_normalize_divides_log_ratios():
    rho, lengths = [2.0, 1.0], [4, 1]
    out = compute_listwise("pl", t(*rho).unsqueeze(0), torch.zeros(1, 2, dtype=torch.float64),
                           scores=t(1.0, 0.0).unsqueeze(0), lengths=torch.tensor([lengths]),
                           beta=1.0, length_normalize=True)
    close(out, [-logsig(2.0 / 4 - 1.0 / 1)])
