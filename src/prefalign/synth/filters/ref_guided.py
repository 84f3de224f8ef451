"""``ref-guided``: keep the pairs the reference model already prefers the right way ("Clear
Preferences Leave Traces: Reference Model-Guided Sampling for Preference Learning").

A clear preference leaves a trace in the reference: log π_ref(y_w) − log π_ref(y_l), the
reference's log-ratio of chosen over rejected (summed over tokens, or with ``per_token`` the
difference of the per-token means), agrees with the label. The filter keeps a pair whose
log-ratio is at least ``threshold``, with its ``reference_logratio`` column, and drops the
others as ``reference_disagrees``. The log-probs are the engine's packed forward.
"""

from __future__ import annotations

import math
from collections import Counter

from prefalign.core.registry import Option
from prefalign.scoring.pair_signals import pair_logps

from . import pair_filter, require_pairs


@pair_filter(
    "ref-guided", summary="pairs whose reference log-ratio log π_ref(y_w) − log π_ref(y_l) is "
                          "below a threshold",
    paper="Clear Preferences Leave Traces: Reference Model-Guided Sampling for Preference "
          "Learning",
    options=[
        Option("ref_model", str, None, "the reference's model folder", required=True),
        Option("threshold", float, 0.0, "smallest log-ratio kept",
               rule=(lambda v: math.isfinite(v), "a finite number")),
        Option("per_token", bool, False, "compare per-token mean log-probs"),
        Option("device", str | None, None, "where the model runs (default: cuda when "
                                           "available, else cpu)"),
    ], pairs_only=True)
def ref_guided(records, options, dropped: Counter) -> list:
    require_pairs(records, "ref-guided")
    if not records:
        return []
    logps, lengths = pair_logps(records, options["ref_model"], device=options["device"])
    kept = []
    for record, pair, sizes in zip(records, logps, lengths):
        if pair is None:
            dropped["untokenizable"] += 1  # no exact prompt/response boundary
            continue
        (w, l), (nw, nl) = pair, sizes
        ratio = (w / max(nw, 1) - l / max(nl, 1)) if options["per_token"] else w - l
        if ratio >= options["threshold"]:
            record.meta["reference_logratio"] = ratio
            kept.append(record)
        else:
            dropped["reference_disagrees"] += 1
    return kept
