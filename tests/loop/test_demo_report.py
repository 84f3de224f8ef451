"""The demo's report shows model text as written: no HTML renders, tables keep their rows."""

import json
import re

from prefalign.demo.report import write_demo_report

NASTY = ["12+34=<img src=x onerror=alert(1)>", "a|b\nc", "`x` **bold** [link](http://e.invalid)"]


def _demo_folder(tmp_path, examples, **extra) -> dict:
    """The round evals `write_demo_report` reads, with ``examples``, and a summary of a one-round
    demo (``extra`` keys added to it)."""
    for k in (0, 1):
        (tmp_path / "rounds" / f"round-{k}").mkdir(parents=True)
        (tmp_path / "rounds" / f"round-{k}" / "eval.json").write_text(
            json.dumps({"examples": examples}))
    return {"config": {"sizes": {"layers": 2, "hidden": 8, "rounds": 1, "n": 4},
                       "objective": "dpo"},
            "task": {"teacher_accuracy": 0.5, "heldout_prompts": 2},
            "rounds": {"sft_accuracy": 0.4, "rounds": [
                {"round": 1, "accuracy": 0.6, "records": 3, "trained": False}]},
            "gain_points": 20.0, "total_seconds": 1.0, "final_eval": {"kl/k3": 0.1},
            "seconds": {"task": 0.1}, **extra}


def test_the_demo_report_escapes_model_text(tmp_path):
    examples = [{"prompt": NASTY[0], "response": NASTY[1]},
                {"prompt": "1+1=", "response": NASTY[2]}]
    summary = _demo_folder(tmp_path, examples)
    report = write_demo_report(tmp_path, summary)
    md = (report / "report.md").read_text()
    assert "<img src=x" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "**bold**" not in md and "[link](" not in md
    head = md.splitlines().index("| prompt | SFT | final |")
    rows = md.splitlines()[head + 2:head + 2 + len(examples)]
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 4 for row in rows), rows
    assert md.splitlines()[head + 2 + len(examples)] == ""  # no row spilled onto the next line
    html = (report / "report.html").read_text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<td><code>a|b<br>c</code></td>" in html
    assert "<td><code>`x` **bold** [link](http://e.invalid)</code></td>" in html


def _fake_run(tmp_path, *, curve=True, difficulty=True):
    """A demo folder with what `write_demo_report` reads, its curve and difficulty invented."""
    from prefalign.eval import plots

    points = [{"step": 0, "kl": 0.0, "kl_k3": 0.0, "gold": 0.375},
              {"step": 15, "kl": 0.8125, "kl_k3": 0.875, "gold": 0.625},
              {"step": 31, "kl": 1.9375, "kl_k3": 12.5, "gold": 0.5}]
    (tmp_path / "curve" / "round-1").mkdir(parents=True)
    plots.line_plot(tmp_path / "curve" / "round-1" / "curve.png", [p["kl"] for p in points],
                    {"gold": [p["gold"] for p in points]}, title="t")
    hardest = [{"pair": 3, "reference_margin": -2.25, "policy_margin": 1.5,
                "policy_ranks_it_right": True, "prompt": "58+67=", "chosen": "125",
                "rejected": "115"},
               {"pair": 9, "reference_margin": -1.125, "policy_margin": -0.75,
                "policy_ranks_it_right": False, "prompt": "19+94=", "chosen": "113",
                "rejected": "13"}]
    summary = _demo_folder(
        tmp_path, [{"prompt": "1+1=", "response": "2"}],
        curve=[{"round": 1, "prompts": 7, "num_samples": 3, "kl": "k1", "points": points}]
        if curve else None,
        difficulty={"pairs": 16, "reference_wrong": 0.4375, "fixed": 0.857142,
                    "broken": 0.111111, "hardest_pairs": hardest} if difficulty else None)
    return summary, points


def test_the_report_shows_the_curve_and_the_difficulty(tmp_path):
    summary, points = _fake_run(tmp_path)
    report = write_demo_report(tmp_path, summary)
    copied = report / "curve-round-1.png"
    assert copied.read_bytes() == (tmp_path / "curve" / "round-1" / "curve.png").read_bytes()
    md = (report / "report.md").read_text()
    assert "![round 1 curve](curve-round-1.png)" in md
    section = md[md.index("## Over-optimisation curve"):md.index("## Per-pair difficulty")]
    assert "over-optimisation" in section and "7 held-out prompts" in section
    assert "k1 estimate" in section and "KL to the round's start (k1) | k3 |" in section
    assert "| 1 | 15 | 0.8125 | 0.875 | 62.5% |" in section
    assert "| 1 | 31 | 1.938 | 12.5 | 50.0% |" in section
    difficulty = md[md.index("## Per-pair difficulty"):md.index("## Held-out examples")]
    assert "Of 16 held-out" in difficulty and "43.8% wrong" in difficulty
    assert "85.7% of those right" in difficulty and "11.1% of the SFT" in difficulty
    code = "<code>{}</code>".format
    assert f"| {code('58+67=')} | {code('125')} | {code('115')} | -2.25 | +1.50 |" in difficulty
    assert f"| {code('19+94=')} | {code('113')} | {code('13')} | -1.12 | -0.75 |" in difficulty
    html = (report / "report.html").read_text()
    assert "<img src='curve-round-1.png' alt='round 1 curve'>" in html
    assert "<td><code>58+67=</code></td>" in html and "85.7%" in html
    saved = json.loads((report / "summary.json").read_text())
    assert saved["curve"][0]["points"] == points
    assert saved["difficulty"]["hardest_pairs"][1]["prompt"] == "19+94="


def test_without_a_curve_or_pairs_the_sections_are_left_out(tmp_path):
    summary, _ = _fake_run(tmp_path, curve=False, difficulty=False)
    report = write_demo_report(tmp_path, summary)
    md = (report / "report.md").read_text()
    assert "Over-optimisation" not in md and "Per-pair difficulty" not in md
    assert not (report / "curve-round-1.png").exists()


def test_difficulty_joins_the_hardest_pairs_to_their_text(tmp_path):
    from prefalign.demo.stages import difficulty

    rows = [{"prompt": f"{i}+1=", "chosen": str(i + 1), "rejected": str(i)} for i in range(4)]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(json.dumps({
        "counts": {"pairs": 4},
        "metrics": {"difficulty/reference_wrong": 0.5, "difficulty/fixed": 1.0,
                    "difficulty/broken": 0.5},
        "hardest_pairs": [{"pair": 2, "reference_margin": -1.0, "policy_margin": 2.0,
                           "policy_ranks_it_right": True}]}))
    d = difficulty(eval_json, str(pairs))
    assert (d["pairs"], d["reference_wrong"], d["fixed"], d["broken"]) == (4, 0.5, 1.0, 0.5)
    assert d["hardest_pairs"] == [{"pair": 2, "reference_margin": -1.0, "policy_margin": 2.0,
                                   "policy_ranks_it_right": True, "prompt": "2+1=",
                                   "chosen": "3", "rejected": "2"}]
    assert difficulty(eval_json, None) is None  # no held-out pairs: no difficulty
