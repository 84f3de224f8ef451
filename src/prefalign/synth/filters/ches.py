"""``ches``: drop the pairs most likely to displace likelihood, by their centred hidden embedding
similarity ("Unintentional Unalignment: Likelihood Displacement in Direct Preference
Optimization", Razin et al. 2025).

DPO on a pair whose chosen and rejected responses look alike to the model can lower the chosen
response's likelihood, and shift mass to unintended responses (the paper's refusal-rate drop).
The paper measures the likeness with CHES; this filter takes its length-normalised form,
CHES(y_w, y_l) = ⟨h̄_w, h̄_l⟩ − ‖h̄_l‖², where h̄ is the mean over a response's tokens of the
model's last hidden state at the positions that predict them (after the final norm: the
embedding the LM head reads). The ``fraction`` of pairs with the highest CHES is dropped
(``similar_hidden_embeddings``, rounded down, ties in record order); every kept pair carries its
``ches`` column. The hidden states come from a plain forward of each prompt + response.
"""

from __future__ import annotations

import math
from collections import Counter

from prefalign.core.registry import Option
from prefalign.scoring.pair_signals import pair_ches

from . import pair_filter, require_pairs


@pair_filter(
    "ches", summary="the fraction of pairs with the highest centred hidden embedding similarity "
                    "(CHES) of chosen and rejected",
    paper="Unintentional Unalignment: Likelihood Displacement in Direct Preference Optimization "
          "(Razin et al. 2025)",
    options=[
        Option("model", str, None, "the model folder whose hidden states are compared "
                                   "(the policy to be trained)", required=True),
        Option("fraction", float, 0.1, "share of the pairs dropped",
               rule=(lambda v: 0 <= v < 1, "in [0, 1)")),
        Option("device", str | None, None, "where the model runs (default: cuda when "
                                           "available, else cpu)"),
    ], pairs_only=True)
def ches(records, options, dropped: Counter) -> list:
    require_pairs(records, "ches")
    if not records:
        return []
    scores = pair_ches(records, options["model"], device=options["device"])
    usable = [i for i, v in enumerate(scores) if v is not None]
    count = math.floor(options["fraction"] * len(usable))
    most_similar = set(sorted(usable, key=lambda i: -scores[i])[:count])
    kept = []
    for i, record in enumerate(records):
        if scores[i] is None:
            dropped["untokenizable"] += 1  # no exact prompt/response boundary
        elif i in most_similar:
            dropped["similar_hidden_embeddings"] += 1
        else:
            record.meta["ches"] = scores[i]
            kept.append(record)
    return kept
