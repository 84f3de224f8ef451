"""build_report: the plots exist as valid PNGs and the numbers come from the run's files."""

import json

import pytest

from prefalign.eval.report import build_report, read_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lines = []
    for step in range(1, 7):
        row = {"step": step, "loss": 0.7 - 0.05 * step, "seconds": 0.1 * step, "pairs": 4,
               "tokens": 100, "logps/chosen": -10 + 0.1 * step, "logps/rejected": -10 - step,
               "rewards/chosen": 0.01 * step, "rewards/rejected": -0.02 * step,
               "rewards/margin": 0.03 * step, "rewards/accuracy": min(1, 0.5 + 0.1 * step),
               "lr": 1e-6, "grad_norm": 1.0, "kl": 0.1 * step}
        if step % 3 == 0:   # the trainer merges eval results into the step's line
            row.update({"eval/loss": 0.6 - 0.01 * step, "eval/rewards/accuracy": 0.6})
        lines.append(row)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run / "config.json").write_text(json.dumps({"model": "tiny", "objective": "dpo"}))
    (run / "eval.json").write_text(json.dumps({"eval/loss": 0.5, "eval/rewards/accuracy": 0.7}))
    (run / "eval").mkdir()
    (run / "eval" / "eval.json").write_text(json.dumps({"metrics": {"kl/k1": 0.2},
                                                        "lengths": {"policy": [3, 5, 5, 8]}}))
    return run


def test_report_writes_valid_pngs_and_tables(run_dir):
    summary = build_report(run_dir)
    out = run_dir / "report"
    files = {p["file"] for p in summary["plots"]}
    assert {"loss.png", "logps.png", "rewards.png", "margin.png", "accuracy.png", "eval.png",
            "reward_vs_kl.png", "lengths.png"} <= files
    for name in files:
        data = (out / name).read_bytes()
        assert len(data) > 1000 and data[:8] == PNG_MAGIC
    md = (out / "report.md").read_text()
    assert "![Loss](loss.png)" in md and "| rewards/margin | 0.18 |" in md
    assert "<img src='loss.png'" in (out / "report.html").read_text()


def test_summary_values_are_the_metrics_files_last_lines(run_dir):
    build_report(run_dir)
    summary = json.loads((run_dir / "report" / "report.json").read_text())
    rows = read_metrics(run_dir / "metrics.jsonl")
    train = [r for r in rows if "loss" in r]
    assert summary["final"] == train[-1]
    assert summary["steps"] == 6
    assert summary["steps"] == len(rows) == 6
    assert summary["final_eval"] == {"eval/loss": 0.5, "eval/rewards/accuracy": 0.7}
    assert summary["eval"] == {"kl/k1": 0.2}
    loss_plot = next(p for p in summary["plots"] if p["file"] == "loss.png")
    assert loss_plot["keys"] == ["loss"]


def test_final_eval_falls_back_to_the_last_eval_line(run_dir):
    (run_dir / "eval.json").unlink()
    summary = build_report(run_dir)
    assert summary["final_eval"] == {"step": 6, "eval/loss": pytest.approx(0.54),
                                     "eval/rewards/accuracy": 0.6}


def test_report_without_kl_or_eval_skips_those_plots(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.69}) + "\n")
    summary = build_report(run)
    assert [p["file"] for p in summary["plots"]] == ["loss.png"]


def test_bad_metrics_line_is_named(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 0.6}\n{oops\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2"):
        build_report(run)
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        build_report(tmp_path / "missing")


@pytest.mark.parametrize("line,field", [('{"step": "two", "loss": 0.5}', "step"),
                                        ('{"loss": 0.3}', "step"), ('{"step": -1}', "step"),
                                        ('{"step": true}', "step"),
                                        ('{"step": 2, "loss": [0.1, 0.2]}', "loss")])
def test_a_metrics_row_without_a_step_or_with_a_listed_value_is_named(tmp_path, line, field):
    """Rows were plotted as they came: a row without a whole-number step or with a list for a
    metric is one line naming the file, the line and the field."""
    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 0.6}\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"metrics.jsonl, line 2, field '{field}'"):
        build_report(run)


def test_report_cli(run_dir):
    import argparse

    from prefalign.cli.evaluate import add_report_parser

    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", str(run_dir), "--output", str(run_dir / "rep2")])
    assert args.func(args) == 0
    assert (run_dir / "rep2" / "report.json").is_file()


UNESCAPED_PIPE = r"(?<!\\)\|"


def test_report_escapes_what_came_from_the_run(run_dir):
    """HTML in a value does not render, and a `|` or a newline does not break a table row."""
    import re

    (run_dir / "config.json").write_text(json.dumps({"model": "<b>m</b>|`x`", "objective": "dpo"}))
    (run_dir / "eval" / "eval.json").write_text(json.dumps({
        "metrics": {"kl/k1": 0.2, "judge|note": "<script>alert(1)</script>\nsecond line"},
        "lengths": {"policy": [3, 5]}}))
    build_report(run_dir)
    md = (run_dir / "report" / "report.md").read_text()
    assert "<script>" not in md and "<b>" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;<br>second line" in md
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert rows and all(len(re.findall(UNESCAPED_PIPE, line)) == 3 for line in rows), rows
    html = (run_dir / "report" / "report.html").read_text()
    assert "<script>" not in html and "<b>m" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;<br>second line" in html


def test_report_lists_the_hardest_pairs(run_dir):
    (run_dir / "eval" / "eval.json").write_text(json.dumps({
        "metrics": {"difficulty/reference_wrong": 0.5},
        "hardest_pairs": [{"pair": 7, "reference_margin": -2.5, "policy_margin": 0.25,
                           "policy_ranks_it_right": True}]}))
    summary = build_report(run_dir)
    assert summary["hardest_pairs"][0]["pair"] == 7
    md = (run_dir / "report" / "report.md").read_text()
    assert "## Hardest pairs" in md and "| 7 | -2.5 | 0.25 | True |" in md
    html = (run_dir / "report" / "report.html").read_text()
    assert "<td>7</td><td>-2.5</td>" in html
