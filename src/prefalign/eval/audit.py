"""`audit_file`: what a preference file holds and what is wrong with it, as a report
(``audit.md``, ``audit.html``, PNG plots and ``audit.json``), for any file `prefalign train`
reads, ours or not. It never changes the file.

Findings name their rows (file and line, or row): rows the loader refuses (empty or identical
responses, wrong types, ...), pairs whose responses differ only in whitespace, exact duplicates,
near duplicates (equal after normalisation: `prefalign.data.similarity`), pairs whose two
responses are nearly the same text (character 3-gram Jaccard ≥ 0.9), prompts shared with a
held-out file (leakage), rows a training ``--max-length`` would truncate (with a model's
tokenizer), and with a reference model the pairs it ranks strongly against their label
(suspected label noise: log π_ref(y_w) − log π_ref(y_l) < −``noise_threshold``). Statistics:
rows per kind; length bias (the share of pairs whose chosen response is longer, the length gap's
distribution, the correlation of margin with length gap); score and margin distributions when
the file has them; with a model, the CHES distribution (Razin et al. 2025) and with a model and a
reference, the DPO implicit reward margins.
"""

from __future__ import annotations

import math
import os
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from prefalign.core.files import atomic_write, atomic_write_json
from prefalign.data import load_records
from prefalign.data.prompts import read_prompt_rows
from prefalign.data.records import PairRecord
from prefalign.data.similarity import jaccard, normalise, record_key
from prefalign.data.validate import whitespace_key
from prefalign.eval import plots
from prefalign.eval.markdown import html_text, md_row, md_text

MAX_LISTED = 50  # rows listed per finding in the report (audit.json lists them all)
SIMILAR = 0.9  # character 3-gram Jaccard of chosen and rejected at which they are "nearly the same"


def _where(record, i: int) -> str:
    return str(record.where) if record.where is not None else f"record {i + 1}"


def _text_length(value) -> int:
    if isinstance(value, list):
        return sum(len(str(m.get("content", ""))) for m in value if isinstance(m, dict))
    return len(str(value))


def _stats(values: list[float]) -> dict[str, float] | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None
    ordered = sorted(values)
    return {"n": len(values), "mean": statistics.fmean(values), "min": ordered[0],
            "median": statistics.median(values), "max": ordered[-1]}


def _pearson(x: list[float], y: list[float]) -> float | None:
    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return statistics.correlation(x, y)


def audit_file(data: Any, *, eval_data: Any = None, model: str | None = None,
               ref_model: str | None = None, max_length: int | None = None, beta: float = 0.1,
               noise_threshold: float = 10.0, output: str | os.PathLike | None = None,
               device: str | None = None) -> dict[str, Any]:
    """Audit ``data`` (see the module docstring); returns the summary and writes the report to
    ``output`` (default: beside the file, ``STEM.audit/``)."""
    if max_length is not None and model is None:
        raise ValueError("--max-length needs --model (its tokenizer counts the tokens)")
    records, report = load_records(data, on_error="skip", keep_whitespace_variants=True)
    source = report.source
    findings: list[dict[str, Any]] = []

    def finding(check: str, what: str, rows: list[str], **extra) -> None:
        if rows:
            findings.append({"check": check, "what": what, "count": len(rows), "rows": rows,
                             **extra})

    by_reason: dict[str, list[str]] = defaultdict(list)
    for reason, problem in zip(report.problem_reasons, report.problems):
        by_reason[reason].append(problem)
    for reason, problems in sorted(by_reason.items()):
        finding(f"refused:{reason}", f"rows the loader refuses ({reason}); training stops at "
                "the first (or skips them with --on-error skip)", problems)
        # the loader keeps the first 1000 messages; the count is every refused row
        findings[-1]["count"] = report.skipped[reason]

    pairs = [(i, r) for i, r in enumerate(records) if isinstance(r, PairRecord)]
    finding("whitespace_only", "pairs whose responses differ only in whitespace",
            [_where(r, i) for i, r in pairs
             if whitespace_key(r.chosen) == whitespace_key(r.rejected)])

    exact: dict[tuple, list[str]] = defaultdict(list)
    near: dict[tuple, list[tuple[str, tuple]]] = defaultdict(list)
    for i, r in enumerate(records):
        raw = (r.kind, repr(r.prompt), tuple(repr(x) for x in r.responses),
               getattr(r, "label", None))
        exact[raw].append(_where(r, i))
        near[record_key(r)].append((_where(r, i), raw))
    finding("exact_duplicates", "rows repeating an earlier row exactly (each listed with the "
            "first)", [f"{rows[k]} repeats {rows[0]}" for rows in exact.values() if len(rows) > 1
                       for k in range(1, len(rows))])
    near_rows = []
    for group in near.values():
        first_raw = group[0][1]
        near_rows += [f"{where} ≈ {group[0][0]}" for where, raw in group[1:] if raw != first_raw]
    finding("near_duplicates", "rows equal to an earlier one after normalisation (case, "
            "punctuation, spacing)", near_rows)
    finding("similar_responses", f"pairs whose chosen and rejected are nearly the same text "
            f"(character 3-gram Jaccard ≥ {SIMILAR})",
            [_where(r, i) for i, r in pairs
             if whitespace_key(r.chosen) != whitespace_key(r.rejected)
             and jaccard(normalise(r.chosen), normalise(r.rejected)) >= SIMILAR])

    if eval_data is not None:
        held_out = {normalise(row.prompt) for row in read_prompt_rows(eval_data, strings=True)}
        finding("leaked_prompts", "prompts also in the held-out file (--eval)",
                [_where(r, i) for i, r in enumerate(records) if normalise(r.prompt) in held_out])

    kinds: dict[str, int] = defaultdict(int)
    for r in records:
        kinds[r.kind] += 1
    statistics_: dict[str, Any] = {"rows": report.rows, "loaded": report.loaded,
                                   "refused": report.n_skipped, "kinds": dict(kinds)}

    tokenizer = tokens = None
    if model is not None:
        from transformers import AutoTokenizer

        from prefalign.scoring.pair_signals import tokenized

        tokenizer = AutoTokenizer.from_pretrained(model)
        tokens = tokenized(records, tokenizer)  # None: no exact prompt/response boundary
        finding("untokenizable", "rows the model's tokenizer cannot split exactly into prompt "
                "and response (training refuses them)",
                [_where(r, i) for i, (r, ex) in enumerate(zip(records, tokens)) if ex is None])
    lengths = [(len(tokens[i].responses[0]), len(tokens[i].responses[1]))
               if tokens[i] is not None else None for i, _ in pairs] if tokens is not None \
        else [(_text_length(r.chosen), _text_length(r.rejected)) for _, r in pairs]
    unit = "tokens" if tokenizer is not None else "characters"
    margins = [(r.margin if r.margin is not None else
                (r.score_chosen - r.score_rejected
                 if r.score_chosen is not None and r.score_rejected is not None else None))
               for _, r in pairs]
    gaps = [c - w for c, w in (x for x in lengths if x is not None)]
    with_margin = [(m, x[0] - x[1]) for m, x in zip(margins, lengths)
                   if m is not None and x is not None]
    statistics_["length_bias"] = {
        "unit": unit, "pairs": len(pairs),
        "chosen_longer": (sum(g > 0 for g in gaps) / len(gaps)) if gaps else None,
        "chosen_shorter": (sum(g < 0 for g in gaps) / len(gaps)) if gaps else None,
        "gap": _stats(gaps),
        "margin_vs_gap_correlation": _pearson([m for m, _ in with_margin],
                                              [g for _, g in with_margin])}
    scores = [s for _, r in pairs for s in (r.score_chosen, r.score_rejected) if s is not None]
    statistics_["scores"] = _stats(scores)
    statistics_["margins"] = _stats([m for m in margins if m is not None])

    if max_length is not None:
        finding("truncated", f"rows longer than --max-length {max_length} tokens (prompt + "
                "the longest response): training cuts or drops them",
                [f"{_where(r, i)} ({n} tokens)" for i, (r, ex) in enumerate(zip(records, tokens))
                 if ex is not None and (n := len(ex.prompt_ids) + max(map(len, ex.responses)))
                 > max_length])

    signals: dict[str, list[float]] = {}
    if ref_model is not None and pairs:
        from prefalign.scoring.pair_signals import pair_logps

        ref, _ = pair_logps([r for _, r in pairs], ref_model, device=device)
        ratios = [None if x is None else x[0] - x[1] for x in ref]
        signals["reference_logratio"] = [x for x in ratios if x is not None]
        finding("suspected_label_noise", "pairs the reference ranks strongly against their label "
                f"(log π_ref(chosen) − log π_ref(rejected) < −{noise_threshold:g})",
                [f"{_where(r, i)} ({ratio:.2f})" for (i, r), ratio in zip(pairs, ratios)
                 if ratio is not None and ratio < -noise_threshold])
        if model is not None:
            policy, _ = pair_logps([r for _, r in pairs], model, device=device)
            signals["implicit_margin"] = [beta * ((p[0] - q[0]) - (p[1] - q[1]))
                                          for p, q in zip(policy, ref)
                                          if p is not None and q is not None]
    if model is not None and pairs:
        from prefalign.scoring.pair_signals import pair_ches

        signals["ches"] = [v for v in pair_ches([r for _, r in pairs], model, device=device)
                           if v is not None]
    for name, values in signals.items():
        statistics_[name] = _stats(values)

    out = Path(output) if output is not None else _default_output(data)
    out.mkdir(parents=True, exist_ok=True)
    made = _plots(out, gaps, unit, scores, [m for m in margins if m is not None], signals)
    summary = {"data": source, "eval": None if eval_data is None else str(eval_data),
               "model": model, "ref_model": ref_model, "findings": findings,
               "statistics": statistics_, "plots": made}
    atomic_write_json(out / "audit.json", summary)
    with atomic_write(out / "audit.md") as f:
        f.write(_markdown(summary))
    with atomic_write(out / "audit.html") as f:
        f.write(_html(summary))
    summary["output"] = str(out)
    return summary


def _default_output(data) -> Path:
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        return path.with_name(path.name.split(".")[0] + ".audit")
    return Path("audit")


def _plots(out: Path, gaps, unit, scores, margins, signals) -> list[dict[str, str]]:
    made = []

    def add(name: str, title: str, groups: dict, xlabel: str) -> None:
        if any(groups.values()):
            plots.histogram(out / f"{name}.png", groups, title=title, xlabel=xlabel)
            made.append({"file": f"{name}.png", "title": title})

    add("length_gap", "Length gap of each pair (chosen − rejected)", {"pairs": gaps}, unit)
    add("scores", "Scores", {"scores": scores}, "score")
    add("margins", "Margins (the file's, or its score gaps)", {"margins": margins}, "margin")
    titles = {"reference_logratio": "Reference log-ratio log π_ref(y_w) − log π_ref(y_l)",
              "implicit_margin": "DPO implicit reward margin", "ches": "CHES"}
    for name, values in signals.items():
        add(name, titles[name], {name: values}, name)
    return made


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return str(value)


def _markdown(summary: dict) -> str:
    lines = [f"# Data audit: {md_text(summary['data'])}", ""]
    stats = summary["statistics"]
    lines += [f"{stats['rows']} rows, {stats['loaded']} loaded, {stats['refused']} refused by "
              f"the loader; kinds: {md_text(_fmt(stats['kinds']) or 'none')}.", ""]
    lines += ["## Findings", ""]
    if not summary["findings"]:
        lines += ["None.", ""]
    for f in summary["findings"]:
        lines += [f"### {md_text(f['check'])}: {f['count']}", "", md_text(f["what"]), ""]
        lines += [f"- {md_text(row)}" for row in f["rows"][:MAX_LISTED]]
        if f["count"] > MAX_LISTED:
            lines.append(f"- ... and {f['count'] - MAX_LISTED} more (audit.json lists all)")
        lines.append("")
    lines += ["## Statistics", "", "| statistic | value |", "|---|---|"]
    for key, value in stats.items():
        if key not in ("rows", "loaded", "refused", "kinds"):
            lines.append(md_row([md_text(key), md_text(_fmt(value) if value is not None
                                                       else "n/a")]))
    lines.append("")
    if summary["plots"]:
        lines += ["## Plots", ""] + [f"![{md_text(p['title'])}]({p['file']})"
                                     for p in summary["plots"]] + [""]
    return "\n".join(lines)


def _html(summary: dict) -> str:
    e = html_text
    stats = summary["statistics"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Data audit "
             f"{e(summary['data'])}</title></head><body>",
             f"<h1>Data audit: {e(summary['data'])}</h1>",
             f"<p>{stats['rows']} rows, {stats['loaded']} loaded, {stats['refused']} refused by "
             f"the loader; kinds: {e(_fmt(stats['kinds']) or 'none')}.</p>", "<h2>Findings</h2>"]
    if not summary["findings"]:
        parts.append("<p>None.</p>")
    for f in summary["findings"]:
        parts.append(f"<h3>{e(f['check'])}: {f['count']}</h3><p>{e(f['what'])}</p><ul>")
        parts += [f"<li>{e(row)}</li>" for row in f["rows"][:MAX_LISTED]]
        if f["count"] > MAX_LISTED:
            parts.append(f"<li>... and {f['count'] - MAX_LISTED} more (audit.json lists "
                         "all)</li>")
        parts.append("</ul>")
    parts.append("<h2>Statistics</h2><table border='1' cellpadding='3'>")
    for key, value in stats.items():
        if key not in ("rows", "loaded", "refused", "kinds"):
            parts.append(f"<tr><td>{e(key)}</td><td>{e(_fmt(value) if value is not None else 'n/a')}"
                         "</td></tr>")
    parts.append("</table>")
    for p in summary["plots"]:
        parts.append(f"<h3>{e(p['title'])}</h3><img src='{e(p['file'])}' alt='{e(p['title'])}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
