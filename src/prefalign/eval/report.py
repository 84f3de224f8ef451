"""`build_report(run_dir)`: training curves, reward against KL, length distributions and a
table of final metrics for a training run, as ``RUN/report/report.md``, ``report.html``,
PNG plots and ``report.json`` (for machines).

Inputs: ``RUN/metrics.jsonl`` (one JSON object per optimizer step; lines with ``eval/*`` keys
are evaluations), optionally ``RUN/config.json`` and an eval JSON written by `evaluate_policy`
(``RUN/eval/eval.json``, ``RUN/eval.json`` or one given explicitly) and the trainer's final
evaluation (``RUN/eval.json``, a flat dict of ``eval/*`` values).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from prefalign.core.files import atomic_write, atomic_write_json
from prefalign.eval import plots
from prefalign.eval.markdown import html_text, md_code, md_row, md_text

# (file stem, title, metric keys) for the training curves.
CURVES = [
    ("loss", "Loss", ["loss"]),
    ("logps", "Log-probs of chosen and rejected", ["logps/chosen", "logps/rejected"]),
    ("rewards", "Implicit rewards", ["rewards/chosen", "rewards/rejected"]),
    ("margin", "Reward margin", ["rewards/margin"]),
    ("accuracy", "Reward accuracy", ["rewards/accuracy"]),
]
KL_KEYS = ("kl", "kl/k1", "kl/k3", "eval/kl", "eval/kl/k1", "eval/kl/k3", "objective/kl")
REWARD_KEYS = ("rewards/chosen", "rewards/margin")
EVAL_FILES = ("eval/eval.json", "eval.json")


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The JSON objects of a metrics.jsonl, with a clear error naming a bad line: each row an
    object with a whole-number ``step`` (the x axis of every plot) and values that are numbers,
    null or text (a metric given as a list or an object is refused, not plotted as garbage)."""
    rows = []
    path = Path(path)
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}, line {n}: expected a JSON object")
        step = row.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"{path}, line {n}, field 'step': expected a whole number >= 0, "
                             f"got {step!r}")
        bad = [k for k, v in row.items() if isinstance(v, (list, dict))]
        if bad:
            raise ValueError(f"{path}, line {n}, field {bad[0]!r}: expected a number, null or "
                             f"text, got {type(row[bad[0]]).__name__}")
        rows.append(row)
    return rows


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) \
        and math.isfinite(v) else None


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _evaluations(run: Path, eval_json) -> tuple[dict | None, dict | None]:
    """(an `evaluate_policy` result, the trainer's flat final-eval dict), each if present.

    ``prefalign train`` writes ``RUN/eval.json`` as a flat ``{"eval/...": value}`` dict;
    `evaluate_policy` writes ``{"metrics": ..., "lengths": ...}`` (``prefalign eval --output
    RUN/eval`` puts it at ``RUN/eval/eval.json``).
    """
    candidates = [Path(eval_json)] if eval_json else [run / f for f in EVAL_FILES]
    evaluation = trainer_eval = None
    for path in candidates:
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e.msg})") from None
        if isinstance(data, dict) and "metrics" in data:
            evaluation = evaluation or data
        elif isinstance(data, dict):
            trainer_eval = trainer_eval or data
    return evaluation, trainer_eval


def build_report(run_dir: str | os.PathLike, *, eval_json: str | os.PathLike | None = None,
                 output: str | os.PathLike | None = None) -> dict:
    """Write the report of ``run_dir`` (default into ``run_dir/report``); returns the summary
    that is also written as ``report.json``."""
    run = Path(run_dir)
    metrics_file = run / "metrics.jsonl"
    if not metrics_file.is_file():
        raise FileNotFoundError(f"{metrics_file} not found: build_report needs the run folder "
                                "that `prefalign train` wrote (with metrics.jsonl)")
    out = Path(output) if output else run / "report"
    out.mkdir(parents=True, exist_ok=True)
    rows = read_metrics(metrics_file)
    train_rows = [r for r in rows if "loss" in r]
    eval_rows = [r for r in rows if any(k.startswith("eval/") for k in r)]
    evaluation, trainer_eval = _evaluations(run, eval_json)
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() \
        else None

    made: list[dict] = []
    steps = [r.get("step", i + 1) for i, r in enumerate(train_rows)]
    for stem, title, keys in CURVES:
        series = {k: [_num(r.get(k)) for r in train_rows] for k in keys}
        series = {k: v for k, v in series.items() if any(x is not None for x in v)}
        if series:
            p = plots.line_plot(out / f"{stem}.png", steps, series, title=title)
            made.append({"file": p.name, "title": title, "keys": list(series)})
    eval_keys = sorted({k for r in eval_rows for k in r if k.startswith("eval/")
                        and _num(r[k]) is not None})
    if eval_keys:
        e_steps = [r.get("step", i + 1) for i, r in enumerate(eval_rows)]
        series = {k: [_num(r.get(k)) for r in eval_rows] for k in eval_keys}
        p = plots.line_plot(out / "eval.png", e_steps, series, title="Evaluation metrics")
        made.append({"file": p.name, "title": "Evaluation metrics", "keys": eval_keys})
    kl_key = next((k for k in KL_KEYS if any(_num(r.get(k)) is not None for r in rows)), None)
    reward_key = next((k for k in REWARD_KEYS
                       if any(_num(r.get(k)) is not None for r in rows)), None)
    if kl_key and reward_key:
        pts = [(_num(r.get(kl_key)), _num(r.get(reward_key))) for r in rows]
        pts = [(a, b) for a, b in pts if a is not None and b is not None]
        if pts:
            p = plots.scatter_plot(out / "reward_vs_kl.png", [a for a, _ in pts],
                                   [b for _, b in pts], title="Reward against KL",
                                   xlabel=kl_key, ylabel=reward_key)
            made.append({"file": p.name, "title": "Reward against KL",
                         "keys": [kl_key, reward_key]})
    lengths = (evaluation or {}).get("lengths") or {}
    lengths = {k: v for k, v in lengths.items() if v}
    if lengths:
        p = plots.histogram(out / "lengths.png", lengths, title="Response lengths",
                            xlabel="tokens")
        made.append({"file": p.name, "title": "Response lengths", "keys": list(lengths)})

    final = dict(train_rows[-1]) if train_rows else {}
    summary = {"run_dir": str(run), "steps": len(train_rows), "final": final,
               "final_eval": trainer_eval or (
                   {k: v for k, v in eval_rows[-1].items() if k == "step" or k.startswith("eval/")}
                   if eval_rows else {}),
               "eval": (evaluation or {}).get("metrics", {}),
               "hardest_pairs": (evaluation or {}).get("hardest_pairs", []),
               "plots": made, "config": config}
    atomic_write_json(out / "report.json", summary)
    with atomic_write(out / "report.md") as f:
        f.write(_markdown(summary))
    with atomic_write(out / "report.html") as f:
        f.write(_html(summary))
    return summary


def _tables(summary: dict) -> list[tuple[str, dict]]:
    return [(title, d) for title, d in (("Final training metrics", summary["final"]),
                                        ("Final evaluation (metrics.jsonl)",
                                         summary["final_eval"]),
                                        ("Evaluation (eval.json)", summary["eval"])) if d]


def _markdown(summary: dict) -> str:
    """The report in Markdown; every value from the run is escaped (`md_text`)."""
    cfg = summary.get("config") or {}
    lines = [f"# Training report: {md_text(summary['run_dir'])}", ""]
    if cfg:
        lines += [f"Model {md_code(cfg.get('model', '?'))}, objective "
                  f"{md_code(cfg.get('objective', '?'))}, {summary['steps']} optimizer steps.", ""]
    else:
        lines += [f"{summary['steps']} optimizer steps.", ""]
    for title, table in _tables(summary):
        lines += [f"## {md_text(title)}", "", "| metric | value |", "|---|---|"]
        lines += [md_row([md_text(k), md_text(_fmt(v))]) for k, v in table.items()]
        lines.append("")
    if summary.get("hardest_pairs"):
        lines += ["## Hardest pairs (the reference ranks them worst)", "",
                  "| pair | reference margin | policy margin | policy ranks it right |",
                  "|---|---|---|---|"]
        lines += [md_row([md_text(_fmt(r["pair"])), md_text(_fmt(r["reference_margin"])),
                          md_text(_fmt(r["policy_margin"])),
                          md_text(_fmt(r["policy_ranks_it_right"]))])
                  for r in summary["hardest_pairs"]]
        lines.append("")
    if summary["plots"]:
        lines += ["## Plots", ""]
        lines += [f"![{md_text(p['title'])}]({p['file']})" for p in summary["plots"]]
        lines.append("")
    return "\n".join(lines)


def _html(summary: dict) -> str:
    e = html_text
    cfg = summary.get("config") or {}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Report "
             f"{e(summary['run_dir'])}</title></head><body>",
             f"<h1>Training report: {e(summary['run_dir'])}</h1>"]
    if cfg:
        parts.append(f"<p>Model <code>{e(cfg.get('model', '?'))}</code>, objective "
                     f"<code>{e(cfg.get('objective', '?'))}</code>, {summary['steps']} "
                     "optimizer steps.</p>")
    else:
        parts.append(f"<p>{summary['steps']} optimizer steps.</p>")
    for title, table in _tables(summary):
        parts.append(f"<h2>{e(title)}</h2><table border='1' cellpadding='3'>")
        parts += [f"<tr><td>{e(k)}</td><td>{e(_fmt(v))}</td></tr>" for k, v in table.items()]
        parts.append("</table>")
    if summary.get("hardest_pairs"):
        parts.append("<h2>Hardest pairs (the reference ranks them worst)</h2><table border='1' "
                     "cellpadding='3'><tr><th>pair</th><th>reference margin</th><th>policy "
                     "margin</th><th>policy ranks it right</th></tr>")
        parts += [f"<tr><td>{e(_fmt(r['pair']))}</td><td>{e(_fmt(r['reference_margin']))}</td>"
                  f"<td>{e(_fmt(r['policy_margin']))}</td>"
                  f"<td>{e(_fmt(r['policy_ranks_it_right']))}</td></tr>"
                  for r in summary["hardest_pairs"]]
        parts.append("</table>")
    for p in summary["plots"]:
        parts.append(f"<h3>{e(p['title'])}</h3><img src='{e(p['file'])}' alt='{e(p['title'])}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
