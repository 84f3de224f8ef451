"""The demo pipeline end to end at toy size, its resume, its report, and `--quick` itself."""

import json
import struct
from dataclasses import replace

import pytest

from prefalign.demo import QUICK, DemoConfig, run_demo
from prefalign.demo.compare import check_names, table_markdown

TOY = replace(QUICK, hidden=64, layers=2, sft_examples=4000, sft_steps=300, sft_batch=64,
              sft_lr=2e-3, synth_prompts=60, heldout=40, n=6, rounds=1, batch=1, epochs=1.0,
              eval_samples=1, checkpoint_steps=1, curve_prompts=10)


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# a mixture, as TRL's MPO; mrpo, which needs a second reference model
COMPARE = ["dpo", "kto", "simpo", "0.8*sigmoid+0.2*bco_pair+sft", "mrpo"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = run_demo(DemoConfig(output=str(out), sizes=TOY, compare=COMPARE,
                                 progress=False))
    return out, result


def test_summary_matches_the_files_it_was_built_from(toy_run):
    out, result = toy_run
    s = result.summary
    sft_eval = json.loads((out / "rounds" / "round-0" / "eval.json").read_text())
    round_eval = json.loads((out / "rounds" / "round-1" / "eval.json").read_text())
    assert s["rounds"]["sft_accuracy"] == sft_eval["pass_rate"]
    assert s["rounds"]["rounds"][0]["accuracy"] == round_eval["pass_rate"]
    assert sft_eval["prompts"] == round_eval["prompts"] == TOY.heldout
    assert s["gain_points"] == round(100 * (round_eval["pass_rate"] - sft_eval["pass_rate"]), 1)
    final = json.loads((out / "eval" / "final" / "eval.json").read_text())
    assert {k: v for k, v in s["final_eval"].items() if k != "length/reference/mean"} \
        == final["metrics"]
    ref_lengths = final["lengths"]["reference"]
    assert s["final_eval"]["length/reference/mean"] == sum(ref_lengths) / len(ref_lengths)
    for key in ("kl/k3", "length/policy/mean", "winrate/win_rate", "ranking_accuracy"):
        assert key in s["final_eval"], key
    assert set(s["seconds"]) >= {"task", "base", "sft", "rounds", "heldout_pairs", "eval"}


def test_report_files_hold_the_numbers(toy_run):
    out, result = toy_run
    report = out / "report"
    md = (report / "report.md").read_text()
    s = result.summary
    assert f"{s['rounds']['sft_accuracy']:.1%}" in md
    assert f"{s['rounds']['rounds'][0]['accuracy']:.1%}" in md
    assert "| dpo |" in md and "| kto |" in md and "| simpo |" in md
    html = (report / "report.html").read_text()
    assert "<table>" in html and "demo.png" in html
    width, height = _png_size(report / "demo.png")
    assert width > 300 and height > 200
    assert (report / "training" / "report.md").is_file()
    assert json.loads((report / "summary.json").read_text())["gain_points"] == s["gain_points"]


def test_the_curve_runs_over_every_checkpoint_of_the_round(toy_run):
    out, result = toy_run
    (curve,) = result.summary["curve"]
    steps = [p["step"] for p in curve["points"]]
    train_steps = result.summary["rounds"]["rounds"][0]["train_steps"]
    assert train_steps >= 3, "too few steps for a checkpoint"
    # the start, every step's checkpoint, the final model
    assert steps[0] == 0 and steps[-1] == train_steps, steps
    assert [s for s in steps[1:-1] if s != train_steps] == list(range(1, train_steps)), steps
    assert curve["points"][0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert all(0.0 <= p["gold"] <= 1.0 for p in curve["points"])
    assert curve["prompts"] == 10
    saved = json.loads((out / "curve" / "round-1" / "curve.json").read_text())
    assert [p["gold"] for p in saved["points"]] == [p["gold"] for p in curve["points"]]
    md = (out / "report" / "report.md").read_text()
    assert "![round 1 curve](curve-round-1.png)" in md
    assert _png_size(out / "report" / "curve-round-1.png")[0] > 300
    difficulty = result.summary["difficulty"]
    final = json.loads((out / "eval" / "final" / "eval.json").read_text())
    assert difficulty["fixed"] == final["metrics"]["difficulty/fixed"]
    assert [h["pair"] for h in difficulty["hardest_pairs"]] == \
        [h["pair"] for h in final["hardest_pairs"]]
    assert f"{difficulty['fixed']:.1%} of those right" in md


def test_compare_trains_each_objective_on_the_same_data(toy_run):
    out, result = toy_run
    rows = result.summary["compare"]
    assert [r["objective"] for r in rows] == COMPARE
    sft_acc = result.summary["rounds"]["sft_accuracy"]
    for row in rows:
        folder = row["objective"].replace("*", "_").replace("+", "_")
        config = json.loads((out / "compare" / folder / "config.json").read_text())
        assert config["data"].endswith("round-1/data.jsonl")
        sft = result.summary["sft"]["model"]
        assert config["ref_model"] == ([sft, result.summary["rounds"]["policy"]]
                                       if row["objective"] == "mrpo" else sft)
        assert row["gain_points"] == round(100 * (row["accuracy"] - sft_acc), 1)
        assert 0.0 <= row["accuracy"] <= 1.0 and row["train_seconds"] > 0
    assert all(row["steps"] > 0 for row in rows)
    table = table_markdown(rows)
    assert table.count("\n") == 1 + len(rows)
    assert [r["references"] for r in rows] == [2 if r["objective"] == "mrpo" else 1
                                               for r in rows]
    report = (out / "report" / "report.md").read_text()
    assert "mrpo: also trained against the demo's final policy" in report


def test_rerun_skips_finished_stages(toy_run):
    out, result = toy_run
    weights = out / "sft" / "model" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    again = run_demo(DemoConfig(output=str(out), sizes=TOY, compare=COMPARE,
                                progress=False))
    assert weights.stat().st_mtime_ns == before
    assert again.summary["rounds"] == result.summary["rounds"]
    assert again.summary["seconds"] == result.summary["seconds"]


def test_bad_compare_names_fail_before_training(tmp_path):
    with pytest.raises(ValueError, match="unknown objective"):
        check_names(["dpo", "no_such_objective"])
    assert check_names(["dpo", " tdpo "]) == ["dpo", "tdpo"]
    with pytest.raises(ValueError, match="at least one"):
        check_names([" ", ""])
    with pytest.raises(ValueError, match="unknown objective"):
        run_demo(DemoConfig(output=str(tmp_path / "x"), sizes=TOY, compare=["nope"],
                            progress=False))
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_quick_demo_improves_heldout_accuracy(tmp_path):
    """The CI-sized demo through the CLI: SFT, synth, RPO, eval, report (under a minute here)."""
    from prefalign.cli import main

    assert main(["demo", "--quick", "--output", str(tmp_path), "--no-progress"]) == 0
    s = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert s["config"]["quick"] is True
    assert 0.2 < s["rounds"]["sft_accuracy"] < 0.7  # imperfect SFT policy, room to improve
    assert s["gain_points"] >= 15, s["gain_points"]


def test_rerun_with_other_settings_is_refused(toy_run):
    out, _ = toy_run
    with pytest.raises(ValueError, match="other settings.*seed"):
        run_demo(DemoConfig(output=str(out), sizes=TOY, seed=1, progress=False))
    with pytest.raises(ValueError, match="other settings.*sizes"):
        run_demo(DemoConfig(output=str(out), sizes=replace(TOY, sft_steps=7), progress=False))


def test_bad_objective_settings_fail_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown objective"):
        run_demo(DemoConfig(output=str(tmp_path / "a"), sizes=TOY, objective="dpoo",
                            progress=False))
    with pytest.raises(ValueError, match="no hyperparameter.*betta"):
        run_demo(DemoConfig(output=str(tmp_path / "b"), sizes=TOY, objective_args={"betta": 1},
                            progress=False))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


KILL_SIZES = replace(TOY, sft_steps=700)  # SFT checkpoints every 250 steps


def _run_in_subprocess(out):
    import subprocess
    import sys

    code = ("from dataclasses import replace\n"
            "from prefalign.demo import DemoConfig, run_demo\n"
            "from prefalign.demo.config import DemoSizes\n"
            f"sizes = DemoSizes(**{KILL_SIZES.__dict__!r})\n"
            f"run_demo(DemoConfig(output={str(out)!r}, sizes=sizes, progress=False))\n")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_killed_demo_resumes_to_the_same_result(tmp_path, caplog):
    """SIGKILL during SFT (after its first checkpoint), run again: the same accuracies and
    metrics as an uninterrupted run, and SFT resumed from the checkpoint rather than restarting."""
    import time

    killed = tmp_path / "killed"
    proc = _run_in_subprocess(killed)
    checkpoint = killed / "sft" / "checkpoints" / "step-250" / "trainer_state.json"
    deadline = time.time() + 120
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert checkpoint.exists(), "the SFT stage never reached its first checkpoint"
    assert not (killed / ".stages" / "sft.json").exists(), "killed too late to test resuming"

    with caplog.at_level("INFO", logger="prefalign.train.trainer"):
        resumed = run_demo(DemoConfig(output=str(killed), sizes=KILL_SIZES,
                                      progress=False)).summary
    assert any("resumed from" in r.getMessage() and "/sft/checkpoints/step-" in r.getMessage()
               for r in caplog.records), "SFT restarted instead of resuming"
    clean = run_demo(DemoConfig(output=str(tmp_path / "clean"), sizes=KILL_SIZES,
                                progress=False)).summary
    assert resumed["rounds"] == {**clean["rounds"], "policy": resumed["rounds"]["policy"]}
    assert resumed["final_eval"] == clean["final_eval"]
    steps = [json.loads(line)["step"] for line in
             (killed / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == KILL_SIZES.sft_steps  # no duplicates
