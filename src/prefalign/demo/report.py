"""The demo's report: OUT/report/{report.md, report.html, summary.json, demo.png} plus the last
round's training report (`prefalign.eval.build_report`) in OUT/report/training/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from prefalign.core.files import atomic_write, atomic_write_json
from prefalign.eval.markdown import html_text, md_code, md_row, md_text
from prefalign.eval.report import read_metrics

from .compare import COLUMNS, caveats

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


# The report is a list of blocks, written out as Markdown and as HTML by the two functions below,
# so that both escape what came from the run (model text above all) the same way:
#   ("h", level, text) | ("p", [(text, style), ...]) with style None, "bold" or "code"
#   | ("img", file, alt) | ("table", header, rows) with cells (text, style)

def _document(summary: dict, examples) -> list[tuple]:
    s = summary
    sizes = s["config"]["sizes"]
    acc = stage_accuracies(s)
    blocks: list[tuple] = [
        ("h", 1, "prefalign demo: a tiny model improves from preferences it made itself"),
        ("p", [(f"A {sizes['layers']}-layer, hidden-{sizes['hidden']} Llama-style model with a "
                f"character tokenizer, built from scratch, learns 2-digit addition from "
                f"demonstrations that are right only {s['task']['teacher_accuracy']:.0%} of the "
                f"time (the teacher forgets carries); then, for {sizes['rounds']} round(s), it "
                f"samples {sizes['n']} answers per prompt, a verifier scores them, West-of-N "
                "pairs train it with ", None), (s["config"]["objective"], "code"), (".", None)]),
        ("p", [(f"Held-out accuracy: {acc[1][1]:.1%} after SFT -> {acc[-1][1]:.1%} after "
                f"preference training ({s['gain_points']:+.1f} points)", "bold"),
               (f", on {s['task']['heldout_prompts']} prompts never seen in training, greedy "
                f"decoding. Total time {s['total_seconds']:.0f} s.", None)]),
        ("img", "demo.png", "demo"),
        ("h", 2, "Accuracy by stage"),
    ]
    records = {f"round {r['round']}": r["records"] for r in s["rounds"]["rounds"]}
    blocks.append(("table", ["stage", "held-out accuracy", "pairs trained on"],
                   [[(name, None), (f"{v:.1%}", None), (str(records.get(name, "")), None)]
                    for name, v in acc]))
    blocks += [("h", 2, "Final policy against the SFT policy"),
               ("table", ["metric", "value"],
                [[(label, None), (_fmt(s["final_eval"].get(key)), None)]
                 for key, label in FINAL_METRICS if key in s["final_eval"]])]
    if s.get("compare"):
        blocks += [("h", 2, "Objectives on the same data (round 1's pairs, from the SFT policy)"),
                   ("table", [h for _, h, _ in COLUMNS],
                    [[(fmt.format(row[k]) if row.get(k) is not None else "n/a", None)
                      for k, _, fmt in COLUMNS] for row in s["compare"]])]
        blocks += [("p", [(note, None)]) for note in caveats(s["compare"])]
    blocks += _curve_blocks(s.get("curve")) + _difficulty_blocks(s.get("difficulty"))
    blocks += [("h", 2, "Held-out examples (greedy)"),
               ("table", ["prompt", "SFT", "final"],
                [[(p, "code"), (b, "code"), (a, "code")] for p, b, a in examples]),
               ("h", 2, "Time per stage (seconds)"),
               ("table", ["stage", "seconds"],
                [[(k, None), (f"{v:.1f}", None)] for k, v in s["seconds"].items()]),
               ("p", [("Training curves of the last round: ", None),
                      ("training/report.md", "link"), (".", None)])]
    return blocks


def curve_image(k: int) -> str:
    """The report's copy of round k's OUT/curve/round-k/curve.png."""
    return f"curve-round-{k}.png"


def _curve_blocks(curves: list[dict] | None) -> list[tuple]:
    if not curves:
        return []
    first = curves[0]
    kl = first.get("kl", "k3")  # summaries written before the choice drew k3
    blocks: list[tuple] = [
        ("h", 2, "Over-optimisation curve (verifier accuracy against KL)"),
        ("p", [(f"Each point is one checkpoint of a round's training run (step 0: the round's "
                f"starting policy), sampled {first['num_samples']} times at temperature 1 on "
                f"{first['prompts']} held-out prompts: read each line left to right as the "
                f"policy drifting from where the round started (KL(π ‖ π_ref), {kl} estimate, "
                "from the same samples), and its height as the verifier's accuracy on those "
                "samples (the gold score); a line that turns down while KL keeps growing is "
                "over-optimisation. The table also gives the k3 estimate, which has a heavy "
                "tail: one sample far likelier under the starting policy can throw it far to "
                "the right with no real drift.", None)])]
    for c in curves:
        start = "the SFT policy" if c["round"] == 1 else f"round {c['round'] - 1}'s policy"
        blocks += [("p", [(f"Round {c['round']} (KL to {start}):", "bold")]),
                   ("img", curve_image(c["round"]), f"round {c['round']} curve")]
    blocks.append(("table", ["round", "step", f"KL to the round's start ({kl})", "k3",
                             "verifier accuracy"],
                   [[(str(c["round"]), None), (str(p["step"]), None), (_fmt(p["kl"]), None),
                     (_fmt(p.get("kl_k3", p["kl"] if kl == "k3" else None)), None),
                     ("n/a" if p["gold"] is None else f"{p['gold']:.1%}", None)]
                    for c in curves for p in c["points"]]))
    return blocks


def _difficulty_blocks(d: dict | None, limit: int = 5) -> list[tuple]:
    if not d:
        return []
    return [
        ("h", 2, "Per-pair difficulty (held-out pairs, final policy against the SFT policy)"),
        ("p", [(f"Of {d['pairs']} held-out West-of-N pairs the SFT policy ranks "
                f"{d['reference_wrong']:.1%} wrong (the wrong answer more likely than the right "
                f"one); the final policy ranks {d['fixed']:.1%} of those right (fixed) and "
                f"{d['broken']:.1%} of the SFT policy's right ones wrong (broken). The table "
                "lists the pairs the SFT policy ranks worst: a positive final margin "
                "(log-prob of the right answer minus the wrong one) means the pair was "
                "learned.", None)]),
        ("table", ["prompt", "right", "wrong", "SFT margin", "final margin"],
         [[(r.get("prompt") or "", "code"), (r.get("chosen") or "", "code"),
           (r.get("rejected") or "", "code"), (f"{r['reference_margin']:+.2f}", None),
           (f"{r['policy_margin']:+.2f}", None)] for r in d["hardest_pairs"][:limit]])]


def _md_inline(text: str, style: str | None) -> str:
    if style == "code":
        return md_code(text)
    if style == "bold":
        return f"**{md_text(text)}**"
    if style == "link":
        return f"[{md_text(text)}]({text})"
    return md_text(text)


def _markdown(blocks: list[tuple]) -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            lines += [f"{'#' * block[1]} {md_text(block[2])}", ""]
        elif kind == "p":
            lines += ["".join(_md_inline(t, style) for t, style in block[1]), ""]
        elif kind == "img":
            lines += [f"![{md_text(block[2])}]({block[1]})", ""]
        else:
            _, header, rows = block
            lines += [md_row(md_text(h) for h in header), "|" + "---|" * len(header)]
            lines += [md_row(_md_inline(t, style) for t, style in row) for row in rows]
            lines.append("")
    return "\n".join(lines)


def _html_inline(text: str, style: str | None) -> str:
    e = html_text
    if style == "code":
        return f"<code>{e(text)}</code>"
    if style == "bold":
        return f"<strong>{e(text)}</strong>"
    if style == "link":
        return f"<a href='{e(text.replace('.md', '.html'))}'>{e(text)}</a>"
    return e(text)


def _html(blocks: list[tuple]) -> str:
    """The same report in plain HTML, every text escaped (`html_text`)."""
    e = html_text
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>prefalign demo</title>"
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
             "td,th{border:1px solid #ccc;padding:3px 8px}table{border-collapse:collapse}"
             "</style></head><body>"]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            parts.append(f"<h{block[1]}>{e(block[2])}</h{block[1]}>")
        elif kind == "p":
            parts.append("<p>" + "".join(_html_inline(t, st) for t, st in block[1]) + "</p>")
        elif kind == "img":
            parts.append(f"<img src='{e(block[1])}' alt='{e(block[2])}'>")
        else:
            _, header, rows = block
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            parts.extend("<tr>" + "".join(f"<td>{_html_inline(t, st)}</td>" for t, st in row)
                         + "</tr>" for row in rows)
            parts.append("</table>")
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
    for c in summary.get("curve") or []:  # the report folder holds every image it shows
        shutil.copyfile(out / "curve" / f"round-{c['round']}" / "curve.png",
                        report / curve_image(c["round"]))
    last = summary["rounds"]["rounds"][-1]["round"]
    blocks = _document(summary, _examples(out, last))
    atomic_write_json(report / "summary.json", summary)
    with atomic_write(report / "report.md") as f:
        f.write(_markdown(blocks))
    with atomic_write(report / "report.html") as f:
        f.write(_html(blocks))
    return report
