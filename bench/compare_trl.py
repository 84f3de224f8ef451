"""prefalign vs TRL's DPOTrainer on the same fixture, in one run, each as a whole process.

    python bench/compare_trl.py [--prompt-len 384] [--pairs 64] [--batch 4] [--skip-trl]

Builds the offline fixture (../shared/bench/make_fixture.py: Llama-style, 4 layers, hidden 256,
vocab 32,000) if needed, then runs, one after the other on the same machine:
  trl-fp32     TRL DPOTrainer, fp32, no gradient checkpointing
  trl-bf16-gc  TRL with its own defaults (bf16 autocast + gradient checkpointing)
  prefalign    `prefalign train --objective sigmoid`, fp32, reference cache cold
Each is timed as a whole process (start-up, tokenization and reference log-probs included);
peak RSS comes from the OS. Prints a Markdown table and writes bench/out/compare-*.json.
TRL must be installed (`pip install trl`); it is a peer, not a prefalign dependency.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_BENCH = HERE.parent.parent / "shared" / "bench"


def run(cmd: list[str], env=None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of the child, stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    # ru_maxrss of children is the max over all children so far; run the biggest last or
    # read it per child with /usr/bin/time when available.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024, proc.stdout


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Run under /usr/bin/time -v when present, for a per-process peak RSS."""
    if shutil.which("time") or Path("/usr/bin/time").exists():
        with tempfile.NamedTemporaryFile("r", suffix=".txt") as f:
            wall, _, out = run(["/usr/bin/time", "-v", "-o", f.name] + cmd)
            text = Path(f.name).read_text()
        rss = next(int(line.split()[-1]) for line in text.splitlines() if "Maximum resident" in line)
        return wall, rss / 1024, out
    return run(cmd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt-len", type=int, default=384)
    ap.add_argument("--resp-len", type=int, default=128)
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--trl-modes", default="fp32,bf16-gc")
    ap.add_argument("--out", default=str(HERE / "out"))
    a = ap.parse_args()

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    fx = out / f"fixture-p{a.prompt_len}-r{a.resp_len}-n{a.pairs}"
    if not (fx / "pairs.jsonl").exists():
        subprocess.run([sys.executable, str(SHARED_BENCH / "make_fixture.py"), str(fx),
                        "--prompt-len", str(a.prompt_len), "--resp-len", str(a.resp_len),
                        "--pairs", str(a.pairs)], check=True, capture_output=True)
    results = []
    if not a.skip_trl:
        for mode in a.trl_modes.split(","):
            flags = {"fp32": [], "bf16-gc": ["--bf16", "--gc"]}[mode]
            wall, rss, stdout = timed([sys.executable, str(SHARED_BENCH / "trl_dpo.py"), str(fx),
                                       "--epochs", "1", "--batch", str(a.batch)] + flags)
            info = json.loads(stdout.strip().splitlines()[-1])
            results.append({"impl": f"trl-{mode}", "wall_s": wall, "peak_rss_mib": rss,
                            "steps": info["steps"], "logps_chosen": info["first_logps_chosen"],
                            "logps_rejected": info["first_logps_rejected"],
                            "loss": info["first_loss"]})
    run_dir = Path(tempfile.mkdtemp(prefix="prefalign-bench-"))
    cmd = [sys.executable, "-m", "prefalign.cli", "train", "--model", str(fx / "model"),
           "--data", str(fx / "pairs.jsonl"), "--objective", "sigmoid", "--beta", "0.1",
           "--lr", "1e-5", "--batch-size", str(a.batch), "--epochs", "1", "--max-length", "4096",
           "--output", str(run_dir / "run"), "--cache-dir", str(run_dir / "cache"), "--no-progress"]
    wall, rss, _ = timed(cmd)
    lines = [json.loads(x) for x in (run_dir / "run" / "metrics.jsonl").read_text().splitlines()]
    results.append({"impl": "prefalign", "wall_s": wall, "peak_rss_mib": rss, "steps": len(lines),
                    "logps_chosen": lines[0]["logps/chosen"],
                    "logps_rejected": lines[0]["logps/rejected"], "loss": lines[0]["loss"]})
    shutil.rmtree(run_dir, ignore_errors=True)

    for r in results:
        r["pairs_per_s"] = a.pairs / r["wall_s"]
    print(f"\nfixture: prompts {a.prompt_len // 2}-{a.prompt_len} tokens, responses "
          f"{a.resp_len // 2}-{a.resp_len}, {a.pairs} pairs, batch {a.batch}, 1 epoch, "
          f"{os.cpu_count()} CPUs\n")
    print("| run | wall s | pairs/s | peak RSS MiB | steps | step-1 logps chosen | rejected | loss |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['impl']} | {r['wall_s']:.1f} | {r['pairs_per_s']:.2f} | {r['peak_rss_mib']:.0f} "
              f"| {r['steps']} | {r['logps_chosen']:.3f} | {r['logps_rejected']:.3f} | {r['loss']:.5f} |")
    (out / f"compare-p{a.prompt_len}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
