"""Training data: read, validate, fit the data shape to the objective, tokenize.

Shape rules (anything else fails at once with a message saying what would work):
- pairwise objective: pairwise data;
- unpaired objective (KTO, BCO, NPO): unpaired data, or pairwise data split into a desirable
  chosen and an undesirable rejected example (as TRL's KTO does);
- listwise objective (LiPO, Plackett-Luce): ranked data, or pairwise data as lists of two;
- sft: demonstrations (prompt, completion), or the chosen side of pairwise data.
Objectives with a KL reference point (KTO) get, for each example, a mismatched completion (the
next example's) as a second response under the same prompt, so its log-probs come from the same
prefix-shared forward and the reference cache covers it.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from prefalign.data import load_records, tokenize_records

log = logging.getLogger(__name__)

KL_INPUTS = {"kl_logps", "ref_kl_logps"}


def _needs_kl(spec) -> bool:
    return bool(KL_INPUTS & (set(spec.inputs) | set(getattr(spec, "optional_inputs", ()))))


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


def _add_kl_completions(examples, max_length: int | None = None):
    """Response 1 of example i = completion of example i+1 (a mismatched pair, as in KTO),
    cut to fit ``max_length`` after example i's prompt (the borrowed completion was fitted
    to its own prompt, not to this one)."""
    n = len(examples)
    if n < 2:
        raise ValueError("the KL reference point of this objective needs at least 2 examples")
    out = []
    for i, ex in enumerate(examples):
        borrowed = list(examples[(i + 1) % n].responses[0])
        if max_length is not None:
            borrowed = borrowed[:max(1, max_length - len(ex.prompt_ids))]
        out.append(replace(ex, responses=[ex.responses[0], borrowed]))
    return out


def prepare_examples(source, cfg, spec, tokenizer):
    """Read ``source``, check and fit it to ``spec``, tokenize; returns (examples, report)."""
    records, load_report = load_records(source, on_error=cfg.on_error)  # warns about skips
    examples, tok_report = tokenize_records(  # warns about skips, cuts and drops
        records, tokenizer, max_length=cfg.max_length, truncation=cfg.truncation,
        max_prompt_length=cfg.max_prompt_length, on_error=cfg.on_error)
    if not examples:
        raise ValueError(f"{source}: no usable examples ({load_report.summary()}; "
                         f"{tok_report.summary()})")
    examples = _fit_shape(examples, spec, str(source))
    if spec.shape == "unpaired" and _needs_kl(spec):
        examples = _add_kl_completions(examples, cfg.max_length)
    examples = [replace(ex, index=i) for i, ex in enumerate(examples)]
    return examples, {"load": load_report, "tokenize": tok_report}


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
