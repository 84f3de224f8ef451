"""The demo's report shows model text as written: no HTML renders, tables keep their rows."""

import json
import re

from prefalign.demo.report import write_demo_report

NASTY = ["12+34=<img src=x onerror=alert(1)>", "a|b\nc", "`x` **bold** [link](http://e.invalid)"]


def test_the_demo_report_escapes_model_text(tmp_path):
    examples = [{"prompt": NASTY[0], "response": NASTY[1]},
                {"prompt": "1+1=", "response": NASTY[2]}]
    for k in (0, 1):
        (tmp_path / "rounds" / f"round-{k}").mkdir(parents=True)
        (tmp_path / "rounds" / f"round-{k}" / "eval.json").write_text(
            json.dumps({"examples": examples}))
    summary = {"config": {"sizes": {"layers": 2, "hidden": 8, "rounds": 1, "n": 4},
                          "objective": "dpo"},
               "task": {"teacher_accuracy": 0.5, "heldout_prompts": 2},
               "rounds": {"sft_accuracy": 0.4, "rounds": [
                   {"round": 1, "accuracy": 0.6, "records": 3, "trained": False}]},
               "gain_points": 20.0, "total_seconds": 1.0, "final_eval": {"kl/k3": 0.1},
               "seconds": {"task": 0.1}}
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
