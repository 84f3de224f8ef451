"""prefalign vs TRL's DPOTrainer on one CUDA GPU, bf16, in one run, each as a whole process.

    python bench/gpu_compare.py [--hidden 1024] [--layers 12] [--prompt-len 1024]
        [--resp-len 256] [--pairs 512] [--batch 8] [--runs trl-bf16,trl-bf16-gc,prefalign,...]

Builds a Llama-style fixture with ../shared/bench/make_fixture.py (random weights, word-level
vocabulary of 32,000; prompts of prompt_len/2..prompt_len tokens, two responses of
resp_len/2..resp_len), then trains one epoch of sigmoid DPO (beta 0.1, lr 1e-5) with:
  trl-bf16        TRL DPOTrainer, bf16 autocast, no gradient checkpointing
  trl-bf16-gc     TRL's own defaults: bf16 autocast + gradient checkpointing
  prefalign       `prefalign train --bf16` (SDPA with a dense packed mask)
  prefalign-flex  `prefalign train --bf16 --attn-implementation flex_attention`
  prefalign-varlen  `prefalign train --bf16 --attn-implementation varlen` (padding-free,
                  FlashAttention's variable-length kernel)
Each is timed as a whole process (start-up, tokenization and reference log-probs included);
peak GPU memory is torch.cuda.max_memory_allocated inside the process. Prints a Markdown table
and writes OUT/gpu-compare.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_BENCH = HERE.parent.parent / "shared" / "bench"

# Run in a child so each implementation pays its own start-up and owns the GPU alone.
TRL_CHILD = r"""
import json, sys, torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import DPOConfig, DPOTrainer
fx, batch, gc, out = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
tok = AutoTokenizer.from_pretrained(fx + "/model")
model = AutoModelForCausalLM.from_pretrained(fx + "/model", dtype=torch.float32)
data = load_dataset("json", data_files=fx + "/pairs.jsonl", split="train")
kept = []
class Keep(TrainerCallback):
    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            kept.append(dict(logs))
cfg = DPOConfig(output_dir=out, per_device_train_batch_size=batch, num_train_epochs=1,
                logging_steps=1, save_strategy="no", report_to=[], beta=0.1, loss_type=["sigmoid"],
                learning_rate=1e-5, max_length=4096, bf16=True, gradient_checkpointing=gc,
                dataloader_num_workers=0, seed=0, disable_tqdm=True,
                use_cpu=not torch.cuda.is_available())
trainer = DPOTrainer(model=model, args=cfg, train_dataset=data, processing_class=tok,
                     callbacks=[Keep()])
trainer.train()
first = kept[0]
cuda = torch.cuda.is_available()
print(json.dumps({"steps": len(kept), "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0,
                  "logps_chosen": first.get("logps/chosen"), "logps_rejected": first.get("logps/rejected"),
                  "loss": first["loss"]}))
"""

PREFALIGN_CHILD = r"""
import json, sys, torch
from prefalign.cli import main
rc = main(sys.argv[1:])
cuda = torch.cuda.is_available()
print(json.dumps({"rc": rc, "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0}))
"""


def child(code: str, args: list[str]) -> tuple[float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code] + args, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-6000:])
        raise SystemExit(f"failed: {args[:2]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def run_trl(fx: Path, batch: int, gc: bool, work: Path) -> dict:
    wall, info = child(TRL_CHILD, [str(fx), str(batch), "1" if gc else "0", str(work / "trl")])
    return {"wall_s": wall, **info}


def run_prefalign(fx: Path, batch: int, attn: str, work: Path) -> dict:
    run = work / f"prefalign-{attn}"
    wall, info = child(PREFALIGN_CHILD, [
        "train", "--model", str(fx / "model"), "--data", str(fx / "pairs.jsonl"),
        "--objective", "sigmoid", "--beta", "0.1", "--lr", "1e-5", "--batch-size", str(batch),
        "--epochs", "1", "--max-length", "4096", "--bf16", "--attn-implementation", attn,
        "--output", str(run), "--cache-dir", str(work / f"cache-{attn}"), "--no-progress"])
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {"wall_s": wall, **info, "steps": len(lines), "logps_chosen": lines[0]["logps/chosen"],
            "logps_rejected": lines[0]["logps/rejected"], "loss": lines[0]["loss"],
            "phases": json.loads((run / "timings.json").read_text())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--prompt-len", type=int, default=1024)
    ap.add_argument("--resp-len", type=int, default=256)
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    # FlexAttention last: it compiles for a minute or more, and a time limit should cut it first
    ap.add_argument("--runs",
                    default="prefalign-varlen,prefalign,trl-bf16,trl-bf16-gc,prefalign-flex")
    ap.add_argument("--shared-bench", default=str(SHARED_BENCH))
    ap.add_argument("--out", default=str(HERE / "out"))
    a = ap.parse_args()

    import torch

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    fx = out / f"gpu-fixture-h{a.hidden}-l{a.layers}-p{a.prompt_len}-r{a.resp_len}-n{a.pairs}"
    if not (fx / "pairs.jsonl").exists():
        subprocess.run([sys.executable, str(Path(a.shared_bench) / "make_fixture.py"), str(fx),
                        "--hidden", str(a.hidden), "--layers", str(a.layers),
                        "--prompt-len", str(a.prompt_len), "--resp-len", str(a.resp_len),
                        "--pairs", str(a.pairs)], check=True, capture_output=True)
    runners = {"trl-bf16": lambda work: run_trl(fx, a.batch, False, work),
               "trl-bf16-gc": lambda work: run_trl(fx, a.batch, True, work),
               "prefalign": lambda work: run_prefalign(fx, a.batch, "sdpa", work),
               "prefalign-flex": lambda work: run_prefalign(fx, a.batch, "flex_attention", work),
               "prefalign-varlen": lambda work: run_prefalign(fx, a.batch, "varlen", work)}
    results = []
    for name in a.runs.split(","):
        # each run in its own scratch folder (saved models are large), removed after it
        with tempfile.TemporaryDirectory(prefix=f"prefalign-gpu-bench-{name}-") as work:
            results.append({"impl": name, **runners[name](Path(work))})
        print(json.dumps(results[-1]), flush=True)
        # written after every run, so a time limit still leaves the finished ones
        (out / "gpu-compare.json").write_text(json.dumps(results, indent=2))

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"\n{device}; Llama-style, hidden {a.hidden}, {a.layers} layers, "
          f"vocab 32,000; prompts {a.prompt_len // 2}-{a.prompt_len} tokens, responses "
          f"{a.resp_len // 2}-{a.resp_len}; {a.pairs} pairs, batch {a.batch}, 1 epoch, bf16\n")
    print("| run | wall s | pairs/s | peak GPU MiB | steps | step-1 logps chosen | rejected | loss |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['impl']} | {r['wall_s']:.1f} | {a.pairs / r['wall_s']:.1f} "
              f"| {r['peak_gpu_mib']:.0f} | {r['steps']} | {r['logps_chosen']:.2f} "
              f"| {r['logps_rejected']:.2f} | {r['loss']:.5f} |")
    for r in results:
        if "phases" in r:
            print(f"{r['impl']} phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["phases"].items()
                                                     if k != "compiled_graphs")
                  + f"; compiled graphs {r['phases'].get('compiled_graphs', 0)}")


if __name__ == "__main__":
    main()
