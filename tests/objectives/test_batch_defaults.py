"""A PairwiseBatch built directly (not through the f-divergence modifier) uses the same α as the
registry's default f_alpha_divergence_coef."""

import math

from prefalign import objectives as O
from prefalign.objectives import compute, get

from .hand import close, logsig, t

PW, PL, RW, RL = t(-3.0, -5.2), t(-4.3, -6.6), t(-3.5, -5.0), t(-4.0, -7.0)
RHO_W, RHO_L = [0.5, -0.2], [-0.3, 0.4]


def test_direct_alpha_divergence_batch_defaults_to_alpha_one_half():
    """PairwiseBatch(f_divergence='alpha_divergence') without f_alpha scores with α = 0.5 (TRL's
    convention: s = exp((α−1)ρ)/(α−1) = −2·exp(−ρ/2)), the registry's default."""
    assert get("sigmoid").defaults["f_alpha_divergence_coef"] == 0.5
    batch = O.PairwiseBatch(PW, PL, RW, RL, f_divergence="alpha_divergence")
    s_w, s_l = batch.scores()
    close(s_w, [-2.0 * math.exp(-r / 2) for r in RHO_W])
    close(s_l, [-2.0 * math.exp(-r / 2) for r in RHO_L])
    margin = [-2.0 * math.exp(-a / 2) + 2.0 * math.exp(-b / 2) for a, b in zip(RHO_W, RHO_L)]
    close(batch.score_margin(), margin)
    # compute() with the default coefficient gives the DPO loss on that same margin
    close(compute("sigmoid", PW, PL, RW, RL, beta=0.5, f_divergence_type="alpha_divergence"),
          [-logsig(0.5 * d) for d in batch.score_margin().tolist()])
