"""``strong-vs-weak``: pairs across a pool's models (`prefalign.generation.pool`): the chosen
response from the ``strong`` member, the rejected from the ``weak`` one (weak-vs-strong
negatives; UltraFeedback-style pools where the models' quality is known).

Per prompt the chosen is the strong member's best-scored response and the rejected the weak
member's best-scored (``rejected=best``: the weak model at its best, the hardest negative) or
worst-scored (``rejected=worst``). The scores still decide: when the weak member's pick does
not score below the strong one's the pair is not written (``weak_not_worse``); a prompt missing
either member's responses makes none (``missing_member``). Best-of-pool vs worst-of-pool needs
no option: it is ``west-of-n`` over a pool.
"""

from __future__ import annotations

from collections import Counter

from prefalign.core.registry import Option

from .pairs import make_pair
from .strategies import pair_strategy


@pair_strategy(
    "strong-vs-weak", output="pairwise",
    summary="a pool's strong member's best response vs its weak member's best (or worst)",
    options=[
        Option("strong", str, None, "the pool member (its NAME) whose responses are chosen",
               required=True),
        Option("weak", str, None, "the pool member whose responses are rejected",
               required=True),
        Option("rejected", str, "best", "which of the weak member's responses",
               rule=(lambda v: v in ("best", "worst"), "best or worst")),
    ])
def strong_vs_weak(item, kept, opts, dropped: Counter) -> list:
    options = opts.strategy_options
    strong = [k for k in kept if k.source == options["strong"]]
    weak = [k for k in kept if k.source == options["weak"]]
    if not strong or not weak:
        dropped["missing_member"] += 1
        return []
    chosen = max(strong, key=lambda k: k.score)
    pick = max if options["rejected"] == "best" else min
    rejected = pick(weak, key=lambda k: k.score)
    if not rejected.score < chosen.score:
        dropped["weak_not_worse"] += 1
        return []
    pair = make_pair(item, chosen, rejected, opts, dropped)
    return [] if pair is None else [pair]
