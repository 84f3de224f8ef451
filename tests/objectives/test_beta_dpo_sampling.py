"""β-DPO's multinomial filtering draws the kept examples ∝ the Gaussian weight of their gaps.

p_i = exp(−(h_i − M_0)² / (2σ²)) with M_0 and σ the batch's own mean and (population) std
when no running statistics are given. With one example kept out of three, each is kept with
probability p_i / Σ p; the frequencies over many seeded draws match these by hand. With
nothing to filter out, no draw is made, so the global RNG stream is left as it was.
"""

import math

import torch

from prefalign.objectives import beta_dpo_selection

from .hand import t

GAPS = [0.0, 1.0, 3.0]


def _keep_probabilities():
    m0 = sum(GAPS) / 3
    sd = math.sqrt(sum((g - m0) ** 2 for g in GAPS) / 3)  # population std (unbiased=False)
    w = [math.exp(-((g - m0) ** 2) / (2 * sd**2)) for g in GAPS]
    return [x / sum(w) for x in w]


def test_multinomial_keeps_each_example_in_proportion_to_its_gaussian_weight():
    expected = _keep_probabilities()  # ≈ [0.291, 0.497, 0.211]
    draws = 4000
    counts = [0, 0, 0]
    with torch.random.fork_rng():
        torch.manual_seed(1234)
        for _ in range(draws):
            # n_keep = max(1, ⌊3·(1 − 0.6)⌋) = 1
            _, keep = beta_dpo_selection(t(*GAPS), beta=0.1, alpha=0.0, filter_ratio=0.6, sampling="multinomial")
            assert int(keep.sum()) == 1
            counts[int(keep.nonzero())] += 1
    freq = [c / draws for c in counts]
    # the standard error of each frequency is below 0.008
    assert max(abs(f - e) for f, e in zip(freq, expected)) < 0.025, (freq, expected)


def test_topk_keeps_the_most_typical_gap():
    """Deterministic 'topk': the one kept example is the gap closest to the batch mean."""
    beta_b, keep = beta_dpo_selection(t(*GAPS), beta=0.1, alpha=0.6, filter_ratio=0.6)
    assert keep.tolist() == [False, True, False]
    assert math.isclose(beta_b.item(), 0.1 * (1 + 0.6 * (1.0 - 4.0 / 3.0)), rel_tol=1e-12)


def test_no_draw_when_nothing_is_filtered():
    """filter_ratio = 0 (or a single example, always kept) keeps everything without consuming
    the global RNG, so enabling multinomial sampling does not change a run's random stream."""
    for gaps, ratio in (([0.0, 1.0, 3.0], 0.0), ([0.5], 0.5)):
        before = torch.get_rng_state()
        _, keep = beta_dpo_selection(t(*gaps), beta=0.1, alpha=0.6, filter_ratio=ratio, sampling="multinomial")
        assert keep.all()
        assert torch.equal(torch.get_rng_state(), before)
