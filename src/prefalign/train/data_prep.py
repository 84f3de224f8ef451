"""Training data: read, validate, fit the data shape to the objective, tokenize.

Shape rules (anything else fails at once with a message saying what would work):
- pairwise objective: pairwise data;
- unpaired objective (KTO, BCO, NPO): unpaired data, or pairwise data split into a desirable
  chosen and an undesirable rejected example (as TRL's KTO does);
- listwise objective (LiPO, Plackett-Luce): ranked data, or pairwise data as lists of two;
- sft: demonstrations (prompt, completion), or the chosen side of pairwise data.
Objectives with a KL reference point (KTO) get, for each example, a mismatched completion (a
completion of another prompt) as a second response under the same prompt, so its log-probs come
from the same prefix-shared forward and the reference cache covers it.
Objectives that read a pair's margin (ODPO) get it from the ``margin`` column, else from
``score_chosen − score_rejected``; a pair with neither is refused, naming its row.
Objectives that read a pair's strength (soft labels) get it from the ``strength`` column (what
synth writes), a number in [0, 1]; a pair without one is refused, naming its row.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

from prefalign.data import load_records, tokenize_records
from prefalign.data.errors import DataError
from prefalign.data.records import PairRecord

log = logging.getLogger(__name__)


def _needs_kl(spec) -> bool:
    from prefalign.train.step_loss import needs_kl_completions

    return needs_kl_completions(spec)


def _fit_margins(records, spec):
    """Every pair's margin for an objective that reads one: the ``margin`` column, else
    score_chosen − score_rejected; neither is an error naming the row and the field."""
    if "margin" not in spec.reads():
        return records
    out, derived = [], 0
    for record in records:
        if isinstance(record, PairRecord) and record.margin is None:
            if not spec.margin_from_scores:
                raise DataError(
                    f"objective {spec.name!r} reads each pair's margin column (the other "
                    "preference dimensions' reward gap); score_chosen − score_rejected is not "
                    "it", where=record.where, field="margin", reason="missing_field")
            if record.score_chosen is None or record.score_rejected is None:
                raise DataError(
                    f"objective {spec.name!r} needs each pair's preference strength: give a margin "
                    "column, or score_chosen and score_rejected (the margin is then their "
                    "difference)", where=record.where, field="margin", reason="missing_field")
            record = replace(record, margin=float(record.score_chosen) - float(record.score_rejected))
            derived += 1
        out.append(record)
    if derived:
        log.info("%s: %d pairs without a margin take score_chosen - score_rejected", spec.name, derived)
    return out


def _fit_shape(examples, spec, source: str):
    kinds = {ex.kind for ex in examples}
    data_kind = kinds.pop() if len(kinds) == 1 else "mixed"
    shape = spec.shape
    if shape == "pairwise" and data_kind == "pairwise":
        return examples
    if shape == "unpaired" and data_kind == "unpaired":
        return examples
    if shape == "unpaired" and data_kind == "pairwise":
        out = []
        for ex in examples:
            out.append(replace(ex, responses=[ex.responses[0]], kind="unpaired", label=True))
            out.append(replace(ex, responses=[ex.responses[1]], kind="unpaired", label=False))
        log.info("%s: split %d pairs into %d unpaired examples for %s", source, len(examples),
                 len(out), spec.name)
        return out
    if shape == "listwise" and data_kind == "ranked":
        return examples
    if shape == "listwise" and data_kind == "pairwise":
        return [replace(ex, kind="ranked", scores=list(ex.scores) if ex.scores else [1.0, 0.0])
                for ex in examples]
    if shape == "sft" and data_kind in ("sft", "unpaired", "pairwise"):
        if data_kind == "unpaired" and not all(ex.label for ex in examples):
            raise ValueError(f"{source}: objective sft trains on demonstrations; unpaired data "
                             "with label false cannot be imitated (filter them out, or use kto)")
        return [replace(ex, responses=[ex.responses[0]], label=True) for ex in examples]
    hint = {
        "pairwise": "pairwise data needs columns prompt, chosen, rejected",
        "unpaired": "unpaired objectives take prompt, completion, label (or pairwise data)",
        "listwise": "listwise objectives take prompt, completions, scores (or pairwise data)",
        "sft": "sft takes prompt, completion demonstrations (or pairwise data: the chosen side)",
    }[shape]
    converters = ""
    if data_kind == "ranked" and shape == "pairwise":
        converters = (" Convert ranked lists to pairs first with prefalign.data.ranked_to_pairs "
                      "(best-vs-worst, best-vs-each or all pairs above a score gap).")
    raise ValueError(f"{source}: objective {spec.name!r} is {shape} but the data is {data_kind}; "
                     f"{hint}.{converters}")


def mismatched_partners(prompts) -> list[int]:
    """For each example (given by its prompt, any hashable), the index of an example with a
    different prompt whose completion becomes its mismatched one (KTO's KL reference point).

    Examples are grouped by prompt and the grouped order is shifted by the largest group's size
    m: with n ≥ 2m examples this is a permutation in which no example keeps a completion of its
    own prompt (so a pair split into a chosen and a rejected row never borrows its other half,
    and each completion is borrowed once). With one prompt holding more than half of the data,
    the next example of another prompt is taken (some completions are borrowed twice).
    """
    groups: dict = {}
    for i, p in enumerate(prompts):
        groups.setdefault(p, []).append(i)
    if len(groups) < 2:
        raise ValueError("the KL reference point of this objective needs examples of at least 2 "
                         "different prompts (each prompt is paired with a completion of another)")
    order = [i for members in groups.values() for i in members]
    n, shift = len(order), max(len(members) for members in groups.values())
    partner = [0] * n
    for pos, i in enumerate(order):
        step = shift
        while prompts[order[(pos + step) % n]] == prompts[i]:
            step += 1
        partner[i] = order[(pos + step) % n]
    return partner


def _add_kl_completions(examples, max_length: int | None = None):
    """Response 1 of each example = the completion of an example of another prompt (a
    mismatched pair, as in KTO; see `mismatched_partners`), cut to fit ``max_length`` after
    this example's prompt (the borrowed completion was fitted to its own prompt)."""
    if len(examples) < 2:
        raise ValueError("the KL reference point of this objective needs at least 2 examples")
    partners = mismatched_partners([tuple(ex.prompt_ids) for ex in examples])
    out = []
    for ex, j in zip(examples, partners):
        borrowed = list(examples[j].responses[0])
        if max_length is not None:
            borrowed = borrowed[:max(1, max_length - len(ex.prompt_ids))]
        out.append(replace(ex, responses=[ex.responses[0], borrowed]))
    return out


def prepare_examples(source, cfg, spec, tokenizer, *, levels: bool = False,
                     weights: str | None = None):
    """Read ``source``, check and fit it to ``spec``, tokenize; returns (examples, report).
    ``levels``: also the examples' curriculum levels (``report["levels"]``, for ``--order
    curriculum``), from the records' ``curriculum`` column; ``weights``: a column holding each
    example's loss weight (``report["weights"]``, for ``--pair-weight``)."""
    records, load_report = load_records(  # warns about skips
        source, on_error=cfg.on_error, keep_whitespace_variants=cfg.keep_whitespace_variants)
    records = _fit_margins(records, spec)
    examples, tok_report = tokenize_records(  # warns about skips, cuts and drops
        records, tokenizer, max_length=cfg.max_length, truncation=cfg.truncation,
        max_prompt_length=cfg.max_prompt_length, on_error=cfg.on_error,
        keep_whitespace_variants=cfg.keep_whitespace_variants, validated=True)
    if not examples:
        raise ValueError(f"{source}: no usable examples ({load_report.summary()}; "
                         f"{tok_report.summary()})")
    examples = _fit_shape(examples, spec, str(source))
    if spec.shape == "unpaired" and _needs_kl(spec):
        examples = _add_kl_completions(examples, cfg.max_length)
    report = {"load": load_report, "tokenize": tok_report}
    if levels:  # each example's source record is ``records[ex.index]`` until re-indexed below
        report["levels"] = curriculum_levels(records, examples, source)
    if weights:
        report["weights"] = loss_weights(records, examples, weights)
    if "strength" in spec.reads():
        examples = [replace(ex, strength=p) for ex, p in zip(examples, strengths(
            records, examples, spec.name))]
    if "feedback" in spec.reads() and any("reward" in r.meta for r in records):
        # a completion's scalar feedback (DRO) rides in its scores, one per completion
        examples = [replace(ex, scores=[r]) for ex, r in zip(examples, rewards(
            records, examples, spec.name))]
    examples = [replace(ex, index=i) for i, ex in enumerate(examples)]
    return examples, report


def example_column(records, examples, column: str, read, why: str) -> list:
    """Each example's value of its record's ``column`` (a field the loader reads into the
    record, such as margin, or any other column), through ``read`` (the value, or None when it
    is not acceptable); the first row without an acceptable one is one line naming it and
    ``why`` (the flag and what it accepts)."""
    out = []
    for ex in examples:
        record = records[ex.index]
        raw = getattr(record, column) if column in record.FIELDS else record.meta.get(column)
        value = None if isinstance(raw, bool) else read(raw)
        if value is None:
            where = record.where or f"record {ex.index + 1}"
            raise ValueError(f"{where}: {why}, got {raw!r}")
        out.append(value)
    return out


def _weight(value):
    ok = isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
    return float(value) if ok else None


def _level(value):
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


def loss_weights(records, examples, column: str) -> list[float]:
    """Each example's weight from its record's ``column`` (a finite number >= 0)."""
    out = example_column(records, examples, column, _weight,
                         f"--pair-weight {column} needs a {column} column (a finite number "
                         ">= 0) in every row")
    if not any(out):
        raise ValueError(f"--pair-weight {column}: every example weighs 0; nothing would train")
    return out


def _probability(value):
    ok = isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1
    return float(value) if ok else None


def strengths(records, examples, objective: str) -> list[float]:
    """Each pair's p(chosen ≻ rejected) from its record's ``strength`` column."""
    return example_column(records, examples, "strength", _probability,
                          f"objective {objective!r} needs each pair's strength column "
                          "(p(chosen ≻ rejected), a number in [0, 1]; prefalign synth writes it "
                          "with a pairwise judge, a jury or self-tests)")


def _finite(value):
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def rewards(records, examples, objective: str) -> list[float]:
    """Each completion's reward from its record's ``reward`` column (a finite number)."""
    return example_column(records, examples, "reward", _finite,
                          f"objective {objective!r} reads a reward column, which every row "
                          "needs (a finite number; or none at all: rewards from the labels)")


def curriculum_levels(records, examples, source) -> tuple[int, ...]:
    """Each example's level from its record's ``curriculum`` column (a whole number >= 0)."""
    return tuple(example_column(records, examples, "curriculum", _level,
                                "--order curriculum needs a curriculum column (a whole number "
                                ">= 0) in every row; prefalign synth --pairs curriculum writes "
                                "it"))


def data_summary(reports) -> str:
    """One line for ``prefalign train``: every count shown, zeros included, so nothing skipped,
    cut, dropped or re-tokenized goes unseen."""
    load, tok = reports["load"], reports["tokenize"]
    skipped = load.skipped + tok.skipped

    def counts(total, by_reason):
        reasons = ", ".join(f"{r}: {n}" for r, n in by_reason.most_common())
        return f"{total} ({reasons})" if reasons else str(total)

    kind = f"{load.kind} " if load.kind else ""
    line = (f"data {load.source}: {load.rows} {kind}rows, {tok.examples} used; skipped "
            f"{counts(sum(skipped.values()), skipped)}; truncated {tok.truncated}; dropped "
            f"{counts(tok.n_dropped, tok.dropped)}; responses re-tokenized at the boundary "
            f"{tok.boundary_retokenized}")
    if tok.responses_from_ids or tok.sampled_ids_unused:  # synthesized data with sampled ids
        line += f"; {tok.sources_summary()}"
    return line
