"""Turn each prompt's scored responses into preference records.

Before any strategy, per prompt: empty responses (``empty_response``), responses that could not
be scored (``unscored``; a NaN or infinite score is no score and counts as ``non_finite``), repeats of an earlier identical response (``identical_responses``) and,
unless ``keep_whitespace_variants``, responses that differ from an earlier one only in whitespace
(``whitespace_only_difference``: a pair of them would teach spacing alone) are dropped and
counted; an optional length penalty makes the score ``score - lam * length``
(length in tokens when known, else characters). Then a prompt left with two or more responses
goes to its strategy and the strategy (`strategies.py`: the registry; the built-ins below, their table in
docs/synth.md) turns the kept responses into records.

The best is the first of equally scored maxima. A pair whose two scores are equal is a ``tie``;
one with a gap below ``min_gap`` is ``below_min_gap``; a prompt left with fewer than two responses
is ``too_few_responses``; all are counted, never written. Every pair keeps ``score_chosen``,
``score_rejected`` (after the length penalty) and ``margin`` = their gap, plus ``prompt_index``,
``chosen_index`` and ``rejected_index`` columns (sample indices) for tracing.

When the back end kept the sampled ids (hf, vllm), every record also carries them in its
``sampled_token_ids`` column: the tokenizer's fingerprint, the prompt ids and each response's ids
in the record's order (see `prefalign.data.sampled`), so training trains on the sampled tokens.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence

from prefalign.data.pairing import pair_indices
from prefalign.data.records import PairRecord, RankedRecord, UnpairedRecord
from prefalign.data.sampled import FIELD as SAMPLED_FIELD
from prefalign.data.sampled import SampledIds
from prefalign.data.validate import whitespace_key
from prefalign.generation.types import PromptItem, response_value, sample_seed

from .strategies import get as get_strategy
from .strategies import pair_strategies, pair_strategy, parse_strategy

@dataclass
class PairOptions:
    strategy: str = "west-of-n"  # NAME or NAME:OPTIONS
    min_gap: float = 0.0
    length_penalty: float = 0.0
    label_threshold: float | None = None
    seed: int = 0
    keep_whitespace_variants: bool = False
    strategy_options: dict = field(default_factory=dict)  # read from ``strategy``

    def __post_init__(self):
        # refuses an unknown name (with the closest one) or option before any work
        entry, self.strategy_options = parse_strategy(self.strategy)
        self.strategy_name = entry.name


class Kept(NamedTuple):
    """A response a strategy may pair: its sample index, text, score (after the length
    penalty), for a pool's samples the member that sampled it, and the verdicts behind its
    score when the scorer gave them (a jury's votes, a self-test scorer's pass row)."""

    index: int
    text: str
    score: float
    source: str | None = None
    votes: tuple | None = None


def _kept(texts: Sequence[str], scores: Sequence[float | None], lengths: Sequence[int | None],
          lam: float, dropped: Counter, keep_whitespace_variants: bool = False,
          sources: Sequence[str | None] | None = None, votes=None) -> list[Kept]:
    seen, seen_keys, kept = set(), set(), []
    for i, (text, score) in enumerate(zip(texts, scores)):
        if not text.strip():
            dropped["empty_response"] += 1
        elif score is None:
            dropped["unscored"] += 1
        elif not _finite(score):
            dropped["non_finite"] += 1
        elif text in seen:
            dropped["identical_responses"] += 1
        elif not keep_whitespace_variants and whitespace_key(text) in seen_keys:
            dropped["whitespace_only_difference"] += 1
        else:
            seen.add(text)
            seen_keys.add(whitespace_key(text))
            length = lengths[i] if lengths[i] is not None else len(text)
            value = float(score) - lam * length
            if not math.isfinite(value):  # a huge length penalty or score overflowed
                dropped["non_finite"] += 1
                continue
            kept.append(Kept(i, text, value, sources[i] if sources else None,
                             tuple(votes[i]) if votes and votes[i] is not None else None))
    return kept


def _finite(score) -> bool:
    try:
        return math.isfinite(float(score))
    except (TypeError, ValueError, OverflowError):
        return False


def _pair(item: PromptItem, chosen, rejected, opts: PairOptions, dropped: Counter):
    gap = chosen[2] - rejected[2]
    if chosen[0] == rejected[0] or not gap > 0:  # never a response with itself
        dropped["tie"] += 1
        return None
    if gap < opts.min_gap:
        dropped["below_min_gap"] += 1
        return None
    return PairRecord(
        item.prompt, response_value(item.prompt, chosen[1]),
        response_value(item.prompt, rejected[1]), margin=gap, score_chosen=chosen[2],
        score_rejected=rejected[2], system=item.system,
        meta={"prompt_index": item.index, "chosen_index": chosen[0],
              "rejected_index": rejected[0]})


def _sample_indices(record) -> list[int]:
    """The sample index of each of the record's responses, in the record's order."""
    meta = record.meta
    if isinstance(record, PairRecord):
        return [meta["chosen_index"], meta["rejected_index"]]
    if isinstance(record, RankedRecord):
        return list(meta["sample_indices"])
    return [meta["sample_index"]]


def _with_sampled_ids(records: list, sampled: SampledIds | None) -> list:
    """Each record with its responses' sampled ids (``sampled.responses`` holds every sample's
    ids, by sample index); records whose responses have none are left as they are."""
    if sampled is None:
        return records
    for record in records:
        ids = [sampled.responses[i] for i in _sample_indices(record)]
        if any(r is not None for r in ids):
            record.meta[SAMPLED_FIELD] = SampledIds(sampled.tokenizer, sampled.prompt,
                                                    ids).to_meta()
    return records


def build_records(item: PromptItem, texts: Sequence[str], scores: Sequence[float | None],
                  opts: PairOptions, lengths: Sequence[int | None] | None = None,
                  dropped: Counter | None = None, sampled: SampledIds | None = None, *,
                  votes: Sequence[Sequence[float] | None] | None = None,
                  sources: Sequence[str | None] | None = None,
                  beats: Sequence[Sequence[float | None] | None] | None = None,
                  notes: dict | None = None) -> tuple[list, Counter]:
    """Records for one prompt from its responses ``texts`` and their ``scores``; ``sampled``
    holds the prompt's ids and every response's sampled ids, for the records to carry;
    ``votes`` each response's verdicts behind its score (a jury's), for each pair's
    ``chosen_votes``, ``rejected_votes`` and ``strength``; ``beats`` a pairwise scorer's
    p(response ≻ each sample), for each pair's ``strength``; ``sources`` the pool member that
    sampled each response, for the records' ``chosen_model``/``rejected_model`` (``model``,
    ``models``); ``notes`` what the scorer made for the prompt (its self-written tests), for the
    strategies that need it."""
    records, dropped = _build_records(item, texts, scores, opts, lengths, dropped, sources,
                                      votes, notes)
    if get_strategy(opts.strategy_name).rewrites_text:
        sampled = None  # its responses are not the sampled tokens
    records = _with_votes(_with_sampled_ids(records, sampled), votes)
    return _with_beats(_with_sources(records, sources), beats), dropped


def _with_beats(records: list, beats) -> list:
    """A pairwise scorer's p(chosen ≻ rejected) as each pair's ``strength``."""
    if not beats:
        return records
    for record in records:
        if isinstance(record, PairRecord):
            row = beats[record.meta["chosen_index"]]
            p = None if row is None else row[record.meta["rejected_index"]]
            if p is not None:
                record.meta["strength"] = p
    return records


def _with_sources(records: list, sources) -> list:
    if not sources or not any(sources):
        return records
    for record in records:
        indices = _sample_indices(record)
        if isinstance(record, PairRecord):
            record.meta.update(chosen_model=sources[indices[0]],
                               rejected_model=sources[indices[1]])
        elif isinstance(record, RankedRecord):
            record.meta["models"] = [sources[i] for i in indices]
        else:
            record.meta["model"] = sources[indices[0]]
    return records


def agreement(chosen: Sequence[float], rejected: Sequence[float]) -> float:
    """The share of verdicts that prefer ``chosen`` (a tie counts half): a pair's strength."""
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected))
    return wins / len(chosen)


def _with_votes(records: list, votes) -> list:
    if not votes:
        return records
    for record in records:
        if not isinstance(record, PairRecord):
            continue
        w, l = votes[record.meta["chosen_index"]], votes[record.meta["rejected_index"]]
        if w is not None and l is not None and len(w) == len(l) and w:
            record.meta.update(chosen_votes=list(w), rejected_votes=list(l),
                               strength=agreement(w, l))
    return records


def _build_records(item: PromptItem, texts: Sequence[str], scores: Sequence[float | None],
                   opts: PairOptions, lengths: Sequence[int | None] | None = None,
                   dropped: Counter | None = None, sources=None, votes=None,
                   notes=None) -> tuple[list, Counter]:
    dropped = Counter() if dropped is None else dropped
    lengths = list(lengths) if lengths is not None else [None] * len(texts)
    kept = _kept(texts, scores, lengths, opts.length_penalty, dropped,
                 opts.keep_whitespace_variants, sources, votes)
    if len(kept) < 2:
        dropped["too_few_responses"] += 1
        return [], dropped
    strategy = get_strategy(opts.strategy_name)
    if strategy.needs:  # what the scorer made for the prompt (e.g. its tests)
        return strategy.build(item, kept, opts, dropped, notes=notes or {}), dropped
    return strategy.build(item, kept, opts, dropped), dropped


def make_pair(item: PromptItem, chosen, rejected, opts, dropped: Counter):
    """The pair (chosen, rejected) of kept responses, or None (a tie or a gap below min_gap,
    counted in ``dropped``)."""
    return _pair(item, chosen, rejected, opts, dropped)


def _by_selection(selection: str) -> Callable:
    """A strategy that pairs by `prefalign.data.pairing`'s ``selection`` (shared with
    ranked_to_pairs)."""
    def build(item, kept, opts, dropped):
        rng = (random.Random(sample_seed(opts.seed, item.index, -1))
               if selection == "best_vs_random" else None)
        pairs = (_pair(item, kept[c], kept[r], opts, dropped)
                 for c, r in pair_indices([k[2] for k in kept], selection, rng=rng))
        return [p for p in pairs if p is not None]
    return build


for _name, _selection, _summary in (
        ("west-of-n", "best_vs_worst", "best vs worst (Pace et al. 2024; RLHFlow `max_min`)"),
        ("best-vs-random", "best_vs_random",
         "best vs a random strictly worse response (seeded per prompt)"),
        ("best-vs-second", "best_vs_second",
         "best vs the best strictly worse one (RLHFlow `max_max`)"),
        ("sweet-spot", "sweet_spot",
         "best vs the response whose score is nearest μ − 2σ of the prompt's scores"),
        ("all-pairs", "all_pairs", "every pair with a gap ≥ `--min-gap` (and > 0)")):
    pair_strategy(_name, output="pairwise", summary=_summary)(_by_selection(_selection))


@pair_strategy("ranked", output="ranked",
               summary="all kept responses with their scores (listwise objectives)")
def _ranked(item, kept, opts, dropped):
    values = [k[2] for k in kept]
    if max(values) == min(values):
        dropped["tie"] += 1
        return []
    return [RankedRecord(item.prompt, [response_value(item.prompt, k[1]) for k in kept],
                         values, system=item.system,
                         meta={"prompt_index": item.index,
                               "sample_indices": [k[0] for k in kept]})]


@pair_strategy("unpaired", output="unpaired",
               summary="with `--label-threshold T`: every response, label = score ≥ T; else "
                       "best (true) and worst (false)")
def _unpaired(item, kept, opts, dropped):
    if opts.label_threshold is not None:
        return [UnpairedRecord(item.prompt, response_value(item.prompt, k[1]),
                               k[2] >= opts.label_threshold, system=item.system,
                               meta={"prompt_index": item.index, "sample_index": k[0],
                                     "score": k[2]}) for k in kept]
    [(b, w)] = pair_indices([k[2] for k in kept], "best_vs_worst")
    best, worst = kept[b], kept[w]
    pair = _pair(item, best, worst, opts, dropped)
    if pair is None:
        return []
    return [UnpairedRecord(item.prompt, resp, label, system=item.system,
                           meta={"prompt_index": item.index, "sample_index": idx,
                                 "score": score})
            for resp, label, idx, score in (
                (pair.chosen, True, best[0], best[2]),
                (pair.rejected, False, worst[0], worst[2]))]


def output_kind(strategy: str) -> str:
    """The records' kind of a ``--pairs`` spec."""
    return parse_strategy(strategy)[0].output


def strategy_names() -> tuple[str, ...]:
    return tuple(pair_strategies())
