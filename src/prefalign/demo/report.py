"""The demo's report: OUT/report/{report.md, report.html, summary.json, demo.png} plus the last
round's training report (`prefalign.eval.build_report`) in OUT/report/training/."""

from __future__ import annotations

import html
import json
from pathlib import Path

from prefalign.data.writers import atomic_write
from prefalign.eval.report import read_metrics

from .compare import table_markdown

FINAL_METRICS = [  # (eval.json key, label)
    ("winrate/win_rate", "win rate against the SFT policy (verifier judge, ties half)"),
    ("kl/k3", "KL(policy ‖ SFT), k3 estimate from samples"),
    ("kl/k1", "KL(policy ‖ SFT), k1 estimate from samples"),
    ("length/policy/mean", "mean sampled answer length (tokens, EOS included)"),
    ("length/reference/mean", "mean sampled answer length of the SFT policy"),
    ("ranking_accuracy", "ranking accuracy on held-out pairs"),
    ("rewards/accuracy", "implicit reward accuracy on held-out pairs"),
    ("displacement/chosen_delta", "chosen log-prob change on held-out pairs"),
    ("displacement/chosen_decreased", "share of held-out chosen responses made less likely"),
    ("alignment_gap", "alignment gap (idealized minus actual ranking accuracy)"),
    ("topk_entropy/all", "top-k entropy over held-out response tokens"),
]


def stage_accuracies(summary: dict) -> list[tuple[str, float]]:
    rows = [("teacher demos", summary["task"]["teacher_accuracy"]),
            ("SFT", summary["rounds"]["sft_accuracy"])]
    rows += [(f"round {r['round']}", r["accuracy"]) for r in summary["rounds"]["rounds"]]
    return rows


def _figure(path: Path, summary: dict, round_dirs: dict[int, Path]) -> Path:
    from prefalign.eval import plots  # sets the Agg back end before pyplot loads

    plt = plots.plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    names, values = zip(*stage_accuracies(summary))
    colors = ["#bbbbbb", "#7a9cc6"] + ["#2e7d32"] * (len(names) - 2)
    bars = left.bar(names, [100 * v for v in values], color=colors)
    for bar, v in zip(bars, values):
        left.annotate(f"{100 * v:.0f}%", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                      ha="center", va="bottom", fontsize=9)
    left.set_ylabel("held-out accuracy (%)")
    left.set_ylim(0, 105)
    left.set_title("2-digit addition: verifier accuracy, greedy")
    offset = 0
    for color, (k, rdir) in enumerate(round_dirs.items()):
        rows = [r for r in read_metrics(rdir / "metrics.jsonl") if "loss" in r]
        steps = [offset + r["step"] for r in rows]
        for key, style in (("logps/chosen", "-"), ("logps/rejected", "--")):
            if any(key in r for r in rows):
                right.plot(steps, [r.get(key) for r in rows], style, color=f"C{color}",
                           label=f"round {k} {key.split('/')[1]}")
        offset = steps[-1] if steps else offset
    right.set_xlabel("optimizer step")
    right.set_ylabel("mean log-prob (training batch)")
    right.set_title(f"{summary['config']['objective']}: chosen vs rejected")
    right.grid(alpha=0.3)
    if right.lines:
        right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _examples(out: Path, last_round: int, limit: int = 6) -> list[tuple[str, str, str]]:
    before = json.loads((out / "rounds" / "round-0" / "eval.json").read_text())["examples"]
    after = json.loads((out / "rounds" / f"round-{last_round}" / "eval.json").read_text())["examples"]
    return [(b["prompt"], b["response"], a["response"]) for b, a in zip(before, after)][:limit]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "n/a" if v is None else str(v)


def _markdown(summary: dict, examples) -> str:
    s = summary
    sizes = s["config"]["sizes"]
    acc = stage_accuracies(s)
    lines = [
        "# prefalign demo: a tiny model improves from preferences it made itself", "",
        f"A {sizes['layers']}-layer, hidden-{sizes['hidden']} Llama-style model with a character "
        f"tokenizer, built from scratch, learns 2-digit addition from demonstrations that are "
        f"right only {s['task']['teacher_accuracy']:.0%} of the time (the teacher forgets "
        f"carries); then, for {sizes['rounds']} round(s), it samples {sizes['n']} answers per "
        f"prompt, a verifier scores them, West-of-N pairs train it with "
        f"`{s['config']['objective']}`.", "",
        f"**Held-out accuracy: {acc[1][1]:.1%} after SFT -> {acc[-1][1]:.1%} after preference "
        f"training ({s['gain_points']:+.1f} points)**, on {s['task']['heldout_prompts']} prompts "
        "never seen in training, greedy decoding. Total time "
        f"{s['total_seconds']:.0f} s.", "",
        "![demo](demo.png)", "",
        "## Accuracy by stage", "", "| stage | held-out accuracy | pairs trained on |",
        "|---|---|---|",
    ]
    records = {f"round {r['round']}": r["records"] for r in s["rounds"]["rounds"]}
    lines += [f"| {name} | {v:.1%} | {records.get(name, '')} |" for name, v in acc]
    lines += ["", "## Final policy against the SFT policy", "", "| metric | value |", "|---|---|"]
    lines += [f"| {label} | {_fmt(s['final_eval'].get(key))} |" for key, label in FINAL_METRICS
              if key in s["final_eval"]]
    if s.get("compare"):
        lines += ["", "## Objectives on the same data (round 1's pairs, from the SFT policy)", "",
                  table_markdown(s["compare"])]
    lines += ["", "## Held-out examples (greedy)", "", "| prompt | SFT | final |", "|---|---|---|"]
    lines += [f"| `{p}` | `{b}` | `{a}` |" for p, b, a in examples]
    lines += ["", "## Time per stage (seconds)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in s["seconds"].items()]
    lines += ["", "Training curves of the last round: [training/report.md](training/report.md).",
              ""]
    return "\n".join(lines)


def _html(markdown: str) -> str:
    """A plain HTML rendering of the Markdown above (tables, headings, the image, text)."""
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>prefalign demo</title>"
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
             "td,th{border:1px solid #ccc;padding:3px 8px}table{border-collapse:collapse}"
             "</style></head><body>"]
    table: list[list[str]] = []

    def flush():
        if table:
            head, *body = table
            parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in head) + "</tr>")
            parts.extend("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                         for row in body)
            parts.append("</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
            if not all(set(c) <= set("-") for c in cells):
                table.append(cells)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            parts.append(f"<h{level}>{e(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1:line.rindex(")")]
            parts.append(f"<img src='{e(src)}' alt='demo'>")
        elif line.strip():
            parts.append(f"<p>{e(line).replace('**', '')}</p>")
    flush()
    parts.append("</body></html>")
    return "\n".join(parts)


def write_demo_report(out: Path, summary: dict) -> Path:
    from prefalign.eval import build_report

    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    trained = [r["round"] for r in summary["rounds"]["rounds"] if r["trained"]]
    round_dirs = {k: out / "rounds" / f"round-{k}" for k in trained}
    if trained:
        build_report(round_dirs[trained[-1]], eval_json=out / "eval" / "final" / "eval.json",
                     output=report / "training")
    _figure(report / "demo.png", summary, round_dirs)
    last = summary["rounds"]["rounds"][-1]["round"]
    md = _markdown(summary, _examples(out, last))
    with atomic_write(report / "summary.json") as f:
        json.dump(summary, f, indent=2, default=str)
    with atomic_write(report / "report.md") as f:
        f.write(md)
    with atomic_write(report / "report.html") as f:
        f.write(_html(md))
    return report
