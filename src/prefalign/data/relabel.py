"""Reward-augmented relabeling: each scored pair becomes two pairs conditioned on a target
score (Zhang et al. 2024, "Reward-Augmented Data Enhances Direct Preference Alignment of LLMs").

For a pair (x, y_w, y_l) with scores r_w > r_l: (x | "aim for r_w", y_w ≻ y_l) and
(x | "aim for r_l", y_l ≻ y_w): the model learns what each quality looks like instead of only
that one response beats the other, and at generation time is asked for the highest score. The
condition is the ``template`` (with ``{score}``), put in the pair's system prompt (after any it
had). Scores are written with ``digits`` decimals. A pair without both scores is refused,
naming its row; a pair whose scores are equal says nothing to condition on and is dropped and
counted (``equal_scores``). The new pairs keep the other columns that do not describe the old
pair's two sides or its prompt's tokens (``chosen_*``/``rejected_*``, ``strength``, the sampled
token ids go: the second pair swaps the sides and the system prompt changes the prompt), with
``target_score`` and ``relabeled_from`` (the source row, from 0).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from dataclasses import dataclass

from prefalign.core.settings import Settings, at_least, setting

from .errors import DataError
from .records import PairRecord
from .sampled import FIELD as SAMPLED_FIELD

TEMPLATE = "Write a response whose quality score is {score}."


def reward_augment(records, *, template: str = TEMPLATE, digits: int = 2
                   ) -> tuple[list[PairRecord], Counter]:
    if "{score}" not in template:
        raise ValueError("--template needs {score}")
    out, dropped = [], Counter()
    for n, record in enumerate(records):
        if not isinstance(record, PairRecord):
            raise DataError("reward-augmented relabeling needs pairs (prompt, chosen, rejected)",
                            where=record.where, reason="not_pairwise")
        missing = "score_chosen" if record.score_chosen is None else (
            "score_rejected" if record.score_rejected is None else None)
        if missing:
            raise DataError("reward-augmented relabeling needs score_chosen and score_rejected",
                            where=record.where, field=missing, reason="missing_field")
        if record.score_chosen == record.score_rejected:
            dropped["equal_scores"] += 1
            continue
        for score, chosen, rejected in ((record.score_chosen, record.chosen, record.rejected),
                                        (record.score_rejected, record.rejected, record.chosen)):
            condition = template.format(score=f"{float(score):.{digits}f}")
            system = f"{record.system}\n\n{condition}" if record.system else condition
            kept = {k: v for k, v in record.meta.items()
                    if not k.startswith(("chosen_", "rejected_"))
                    and k not in (SAMPLED_FIELD, "strength")}
            out.append(dataclasses.replace(
                record, chosen=chosen, rejected=rejected, system=system, margin=None,
                score_chosen=None, score_rejected=None,
                meta={**kept, "target_score": float(score), "relabeled_from": n}))
    return out, dropped


@dataclass
class RelabelConfig(Settings):
    """`prefalign data relabel`."""

    data: str = setting("", help="scored pairs (score_chosen, score_rejected): any format "
                        "prefalign train reads; it is never changed")
    output: str = setting("", help="the relabeled pairs (.jsonl or .parquet)")
    template: str = setting(TEMPLATE, help="the condition put in each pair's system prompt, "
                            "with {score}")
    digits: int = setting(2, help="decimals of the score in the condition",
                          rule=(at_least(0), ">= 0"))

    REQUIRED = ("data", "output")
