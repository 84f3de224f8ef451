"""Listwise objectives: padded entries really ignored, ties broken by list position, λ weights.

Long lists (K = 20) are used for the tie tests: ties must keep list order whatever the list
size (the documented stable ordering), not only for the short rows where any sort happens to
keep it.
"""

import math

import torch

from prefalign.objectives import compute_listwise
from prefalign.objectives.listwise import lambda_weights, ranks_desc

from .hand import close, t


def _lse(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _softplus(x):
    return math.log1p(math.exp(x)) if x < 30 else x + math.log1p(math.exp(-x))


def _lipo_by_hand(s, psi, rank):
    """Σ_{ψ_i > ψ_j} |G_i − G_j|·|1/log2(1+τ_i) − 1/log2(1+τ_j)|·softplus(−(s_i − s_j))."""
    gain = [2.0 ** p - 1.0 for p in psi]
    total = 0.0
    for i in range(len(s)):
        for j in range(len(s)):
            if psi[i] > psi[j]:
                w = abs(gain[i] - gain[j]) * abs(1 / math.log2(1 + rank[i]) - 1 / math.log2(1 + rank[j]))
                total += w * _softplus(-(s[i] - s[j]))
    return total


def _pl_by_hand(s, order):
    """−Σ_k log softmax of s over the remaining items, taking them in ``order``."""
    total = 0.0
    for k in range(len(order)):
        rest = [s[i] for i in order[k:]]
        total += _lse(rest) - s[order[k]]
    return total


def test_ranks_desc_keeps_list_order_for_ties_in_a_long_row():
    """ranks_desc: tied keys are ranked in list order (stable), also for a row of 20 entries."""
    key = torch.zeros(1, 20, dtype=torch.float64)
    mask = torch.ones(1, 20, dtype=torch.bool)
    assert ranks_desc(key, mask).tolist() == [list(range(1, 21))]
    # groups of ties between distinct values: 3 > 1 > 0, each group in list order
    vals = [0.0, 3.0, 1.0] * 6 + [3.0, 0.0]
    order = sorted(range(20), key=lambda i: -vals[i])  # Python's sort is stable
    expected = [0] * 20
    for r, i in enumerate(order):
        expected[i] = r + 1
    assert ranks_desc(t(*vals).unsqueeze(0), mask).tolist() == [expected]


def test_ranks_desc_puts_invalid_entries_last_even_with_the_largest_keys():
    """Masked entries rank after every valid one, whatever their key; valid ranks are 1..n."""
    key = t(100.0, 0.5, 100.0, -2.0, 0.5).unsqueeze(0)
    mask = torch.tensor([[False, True, False, True, True]])
    # valid: item 1 (0.5) rank 1, item 4 (0.5, later) rank 2, item 3 rank 3; invalid 0, 2 after, in order
    assert ranks_desc(key, mask).tolist() == [[4, 1, 5, 3, 2]]


def test_lambda_weights_full_matrix_is_symmetric_and_non_negative():
    """lambda_weights returns Δ_ij = |G_i − G_j|·|1/log2(1+τ_i) − 1/log2(1+τ_j)| for every (i, j),
    both orders, including pairs whose better item sits lower in the ranking."""
    psi = [1.0, 3.0, 0.5]
    rank = [1, 3, 2]  # the best-scored item is ranked last: its discount difference is negative
    w = lambda_weights(t(*psi).unsqueeze(0), torch.tensor([rank]))
    gain = [2.0 ** p - 1.0 for p in psi]
    disc = [1 / math.log2(1 + r) for r in rank]
    expected = [[abs(gain[i] - gain[j]) * abs(disc[i] - disc[j]) for j in range(3)] for i in range(3)]
    close(w, [expected])
    assert (w >= 0).all() and torch.equal(w, w.transpose(-1, -2))


def test_lipo_ignores_a_padded_entry_with_the_highest_score_and_garbage_logps():
    """A masked entry in the middle of the list contributes nothing, even when its label score is
    the largest and its log-probs are huge: the loss is that of the list without it."""
    beta = 0.5
    pol = torch.tensor([[0.2, 50.0, -0.6, 0.4]], dtype=torch.float64)
    ref = torch.tensor([[0.0, -50.0, 0.0, 0.1]], dtype=torch.float64)
    scores = t(2.0, 9.0, 0.5, 1.0).unsqueeze(0)
    mask = torch.tensor([[True, False, True, True]])
    s = [beta * 0.2, beta * -0.6, beta * 0.3]  # the three valid items 0, 2, 3
    psi = [2.0, 0.5, 1.0]
    for rank_by, rank in (("policy", [2, 3, 1]), ("scores", [1, 3, 2])):
        out = compute_listwise("lipo_lambda", pol, ref, scores=scores, mask=mask, beta=beta, lipo_rank_by=rank_by)
        close(out, [_lipo_by_hand(s, psi, rank)])
        short = compute_listwise("lipo_lambda", pol[:, [0, 2, 3]], ref[:, [0, 2, 3]], scores=scores[:, [0, 2, 3]],
                                 beta=beta, lipo_rank_by=rank_by)
        close(out, short.tolist())


def test_lipo_ties_in_policy_rewards_are_ranked_by_list_position():
    """lipo_rank_by='policy' with all rewards tied (K = 20): the ranking τ is the list order."""
    psi = [float((7 * i) % 20) / 4 for i in range(20)]  # distinct labels in a scrambled order
    pol = torch.zeros(1, 20, dtype=torch.float64)
    out = compute_listwise("lipo_lambda", pol, torch.zeros_like(pol), scores=t(*psi).unsqueeze(0), beta=1.0)
    close(out, [_lipo_by_hand([0.0] * 20, psi, list(range(1, 21)))], tol=1e-9)


def test_lipo_ties_in_scores_are_ranked_by_list_position():
    """lipo_rank_by='scores' with tied labels (K = 20): tied items take ranks in list order."""
    psi = [float(i % 3) for i in range(20)]
    rho = [0.05 * ((5 * i) % 11) - 0.2 for i in range(20)]
    order = sorted(range(20), key=lambda i: -psi[i])
    rank = [0] * 20
    for r, i in enumerate(order):
        rank[i] = r + 1
    out = compute_listwise("lipo", t(*rho).unsqueeze(0), torch.zeros(1, 20, dtype=torch.float64),
                           scores=t(*psi).unsqueeze(0), beta=1.0, lipo_rank_by="scores")
    close(out, [_lipo_by_hand(rho, psi, rank)], tol=1e-9)


def test_plackett_luce_orders_tied_scores_by_list_position_in_a_long_list():
    """Plackett-Luce: items with equal scores are taken in list order (documented), K = 20."""
    psi = [float(i % 4 == 0) + float(i % 3 == 0) for i in range(20)]  # many ties among 0, 1, 2
    rho = [0.1 * ((3 * i) % 7) - 0.3 for i in range(20)]
    beta = 0.7
    s = [beta * r for r in rho]
    order = sorted(range(20), key=lambda i: -psi[i])
    out = compute_listwise("plackett_luce", t(*rho).unsqueeze(0), torch.zeros(1, 20, dtype=torch.float64),
                           scores=t(*psi).unsqueeze(0), beta=beta)
    close(out, [_pl_by_hand(s, order)], tol=1e-9)


def test_plackett_luce_ignores_a_padded_entry_with_the_highest_score_in_the_middle():
    """A masked entry placed first by its score and holding -inf log-probs is left out of every
    softmax: the loss is that of the list without it."""
    beta = 0.5
    pol = torch.tensor([[0.2, -math.inf, 1.0, -0.4]], dtype=torch.float64)
    ref = torch.zeros(1, 4, dtype=torch.float64)
    mask = torch.tensor([[True, False, True, True]])
    out = compute_listwise("pl", pol, ref, scores=t(2.0, 9.0, 5.0, 1.0).unsqueeze(0), mask=mask, beta=beta)
    s = {0: 0.1, 2: 0.5, 3: -0.2}
    close(out, [_pl_by_hand(s, [2, 0, 3])])
