"""The GPU benchmark's CPU dry run stays runnable: `bench/gpu_compare.py --smoke` builds its tiny
fixture, runs prefalign (TRL's runs need TRL, a peer that is not a dependency) and prints the
table with steady-state tokens/s and the step-1 log-probs."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_compare_smoke_runs_on_cpu(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_compare.py"), "--smoke",
                           "--runs", "prefalign,prefalign-flex", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| prefalign | " in proc.stdout and "steady tokens/s" in proc.stdout
    # a run prefalign refuses (FlexAttention needs CUDA) is a row of the table, not a crash
    assert "| prefalign-flex | failed: " in proc.stdout and "CUDA" in proc.stdout
    result = json.loads((tmp_path / "gpu-compare.json").read_text())
    run = result["runs"][0]
    assert run["impl"] == "prefalign" and run["steps"] == 4 and run["tokens_per_s"] > 0
    assert run["phases"]["compiled_graphs"] == 0
    fixture = json.loads(next(tmp_path.glob("fixture-*/fixture.json")).read_text())
    assert fixture["vocab"] == 2000 and 20 <= fixture["mean_prompt"] <= 60
