"""prefalign vs TRL's DPOTrainer on realistic shapes, each tool as a whole process, in one run.

    python bench/gpu_compare.py                      # on a CUDA GPU: both models, both mixes
    python bench/gpu_compare.py --smoke              # anywhere (CPU): a tiny model, a few steps
    python bench/gpu_compare.py --models qwen2.5-1.5b --mixes chat --runs prefalign,trl-default

Models: random weights in the shapes of Qwen2.5-1.5B (hidden 1536, 28 layers, 12/2 GQA heads,
vocab 151,936, tied embeddings) and Llama-3.2-1B (hidden 2048, 16 layers, 32/8 heads, vocab
128,256, tied), built here with a word-level tokenizer of the same vocabulary size; the data is
random words. Length mixes (tokens): chat (prompts 200-600, responses 200-500) and long-prompt
(prompts 1,500-3,000, responses 100-300). Sigmoid DPO, beta 0.1, lr 1e-6, bf16, ``--max-steps``
optimizer steps of ``--batch`` pairs.

Runs (each a separate process that owns the GPU alone):
  prefalign         `prefalign train --bf16` (attention: the default for the family)
  prefalign-varlen  the same with `--attn-implementation varlen` (padding-free, FlashAttention's
                    variable-length kernel on CUDA)
  prefalign-flex    the same with `--attn-implementation flex_attention` (bucketed shapes)
  trl-default       TRL 1.16 DPOTrainer as it comes: bf16, gradient checkpointing
  trl-fast          TRL without gradient checkpointing and with precompute_ref_log_probs

Step times: prefalign's per-step ``seconds`` (packing the micro-batches included); TRL's from
``on_step_begin`` to ``on_step_end`` (its batch is fetched and collated before, so this
slightly favours TRL).

Reported per run: steady-state tokens/s (the pairs' tokens, prompt + chosen + rejected, per
second of the median optimizer step after the first quarter of steps: the same numerator for
both tools), pairs/s over the whole process (start-up, tokenization, reference pass included),
peak GPU memory (torch.cuda.max_memory_allocated in the process), MFU, step-1 log-probs and
loss. A run that runs out of GPU memory is recorded as OOM.

MFU = training FLOPs per steady step / step time / peak. Training FLOPs per pair, written down:
6·N·(P + C + R) for the policy's forward and backward over the pair's tokens (N = parameters
outside the embedding and the LM head, P/C/R the prompt/chosen/rejected lengths; the prompt
counted once, as the work the pair needs) plus 6·H·V·(C + R) for the LM head on the response
tokens. The reference pass (2·N·(P + C + R) + 2·H·V·(C + R) per pair) is not in the step FLOPs:
prefalign and trl-fast do it once before the steps (it is in their process time), trl-default
inside every step (so its steady MFU counts that work as overhead). ``--peak-tflops`` defaults
to an H200's dense bf16 peak, 989.

Writes OUT/gpu-compare.json after every run (a time limit keeps the finished ones) and prints
one Markdown table per model and mix.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

SHAPES = {
    "qwen2.5-1.5b": dict(family="qwen2", hidden_size=1536, intermediate_size=8960,
                         num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                         vocab_size=151_936, tie_word_embeddings=True, rope_theta=1_000_000.0,
                         max_position_embeddings=32_768),
    "llama-3.2-1b": dict(family="llama", hidden_size=2048, intermediate_size=8192,
                         num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                         vocab_size=128_256, tie_word_embeddings=True, rope_theta=500_000.0,
                         max_position_embeddings=8192),
    "tiny": dict(family="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=2000,
                 tie_word_embeddings=True, rope_theta=10_000.0, max_position_embeddings=1024),
}
MIXES = {  # (prompt min, max), (response min, max) in tokens
    "chat": ((200, 600), (200, 500)),
    "long-prompt": ((1500, 3000), (100, 300)),
    "smoke": ((20, 60), (10, 30)),
}
RUNS = ("prefalign", "prefalign-varlen", "trl-default", "trl-fast", "prefalign-flex")
SMOKE_RUNS = RUNS[:4]  # FlexAttention needs CUDA

TRL_CHILD = r"""
import json, sys, time, torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import DPOConfig, DPOTrainer
fx, batch, steps, gc, precompute, bf16, out = sys.argv[1:8]
batch, steps = int(batch), int(steps)
gc, precompute, bf16 = gc == "1", precompute == "1", bf16 == "1"
cuda = torch.cuda.is_available()
sync = torch.cuda.synchronize if cuda else (lambda: None)
kept, step_seconds = [], []
class Record(TrainerCallback):
    def on_step_begin(self, args, state, control, **kw):
        sync(); self.t0 = time.perf_counter()
    def on_step_end(self, args, state, control, **kw):
        sync(); step_seconds.append(time.perf_counter() - self.t0)
    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            kept.append(dict(logs))
try:
    tok = AutoTokenizer.from_pretrained(fx + "/model")
    model = AutoModelForCausalLM.from_pretrained(fx + "/model", dtype=torch.float32)
    data = load_dataset("json", data_files=fx + "/pairs.jsonl", split="train")
    cfg = DPOConfig(output_dir=out, per_device_train_batch_size=batch, max_steps=steps,
                    logging_steps=1, save_strategy="no", report_to=[], beta=0.1,
                    loss_type=["sigmoid"], learning_rate=1e-6, max_length=8192, bf16=bf16,
                    gradient_checkpointing=gc, precompute_ref_log_probs=precompute,
                    dataloader_num_workers=0, seed=0, disable_tqdm=True, use_cpu=not cuda)
    DPOTrainer(model=model, args=cfg, train_dataset=data, processing_class=tok,
               callbacks=[Record()]).train()
except torch.OutOfMemoryError:
    print(json.dumps({"oom": True, "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20})); sys.exit(0)
first = kept[0]
print(json.dumps({"step_seconds": step_seconds, "logps_chosen": first.get("logps/chosen"),
                  "logps_rejected": first.get("logps/rejected"), "loss": first["loss"],
                  "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0}))
"""

PREFALIGN_CHILD = r"""
import json, sys, torch
from prefalign.cli import main
try:
    rc = main(sys.argv[1:])
except torch.OutOfMemoryError:
    print(json.dumps({"oom": True, "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20})); sys.exit(0)
if rc:
    sys.exit(rc)  # a refusal or error: its one line is on stderr for the table
cuda = torch.cuda.is_available()
print(json.dumps({"rc": rc, "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0}))
"""


# ---- the fixture: a random-weight model in a real model's shape, random-word pairs -----------
def build_fixture(out: Path, shape: str, mix: str, pairs: int, seed: int = 0) -> dict:
    """``out/model`` (config, bf16 weights on CUDA / fp32 on CPU, word-level tokenizer) and
    ``out/pairs.jsonl``; returns the fixture's facts (parameter counts, mean lengths)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    info_file = out / "fixture.json"
    if info_file.exists():
        return json.loads(info_file.read_text())
    spec = dict(SHAPES[shape])
    family = spec.pop("family")
    vocab_size = spec["vocab_size"]
    special = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {t: i for i, t in enumerate(special)}
    vocab.update({f"w{i}": i + len(special) for i in range(vocab_size - len(special))})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")
    model_dir = out / "model"
    fast.save_pretrained(model_dir)
    config = AutoConfig.for_model(family, pad_token_id=0, bos_token_id=1, eos_token_id=2, **spec)
    torch.manual_seed(seed)
    cuda = torch.cuda.is_available()
    with torch.device("cuda" if cuda else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if cuda else torch.float32)
    model.save_pretrained(model_dir)
    embed = model.get_input_embeddings().weight.numel()
    head = 0 if spec["tie_word_embeddings"] else model.get_output_embeddings().weight.numel()
    n_body = sum(p.numel() for p in model.parameters()) - embed - head
    del model
    rnd = random.Random(seed)
    (pmin, pmax), (rmin, rmax) = MIXES[mix]
    words = lambda n: " ".join(f"w{rnd.randrange(vocab_size - len(special))}" for _ in range(n))  # noqa: E731
    lengths = []
    with open(out / "pairs.jsonl", "w") as f:
        for _ in range(pairs):
            p, c, r = rnd.randint(pmin, pmax), rnd.randint(rmin, rmax), rnd.randint(rmin, rmax)
            lengths.append((p, c, r))
            f.write(json.dumps({"prompt": words(p) + " ", "chosen": words(c),
                                "rejected": words(r)}) + "\n")
    info = {"shape": shape, "mix": mix, "pairs": pairs, "n_body": n_body,
            "hidden": spec["hidden_size"], "vocab": vocab_size,
            "mean_prompt": statistics.mean(p for p, _, _ in lengths),
            "mean_responses": statistics.mean(c + r for _, c, r in lengths)}
    info_file.write_text(json.dumps(info, indent=2))
    return info


def train_flops_per_pair(info: dict) -> float:
    """6·N·(P + C + R) + 6·H·V·(C + R), on the fixture's mean lengths (see the docstring)."""
    tokens = info["mean_prompt"] + info["mean_responses"]
    return 6 * info["n_body"] * tokens + 6 * info["hidden"] * info["vocab"] * info["mean_responses"]


# ---- running one tool -------------------------------------------------------------------------
def child(code: str, args: list[str], timeout: float) -> tuple[float, dict]:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", code] + args, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t0, {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stdout[-1500:] + proc.stderr[-3000:]).strip()
        if "OutOfMemoryError" in tail or "CUDA out of memory" in tail:
            return wall, {"oom": True}
        sys.stderr.write(tail + "\n")
        lines = [x for x in tail.splitlines() if "error:" in x] or tail.splitlines()
        return wall, {"error": lines[-1] if lines else f"exit {proc.returncode}"}
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def run_trl(fx: Path, a, gc: bool, precompute: bool, work: Path) -> dict:
    wall, info = child(TRL_CHILD, [str(fx), str(a.batch), str(a.max_steps), "1" if gc else "0",
                                   "1" if precompute else "0", "0" if a.smoke else "1",
                                   str(work / "trl")], a.run_timeout)
    return {"wall_s": wall, **info}


def run_prefalign(fx: Path, a, attn: str | None, work: Path) -> dict:
    run = work / "prefalign"
    args = ["train", "--model", str(fx / "model"), "--data", str(fx / "pairs.jsonl"),
            "--objective", "sigmoid", "--beta", "0.1", "--lr", "1e-6", "--batch-size", str(a.batch),
            "--max-steps", str(a.max_steps), "--max-length", "8192", "--output", str(run),
            "--cache-dir", str(work / "cache"), "--no-progress"]
    args += [] if a.smoke else ["--bf16"]
    args += ["--attn-implementation", attn] if attn else []
    wall, info = child(PREFALIGN_CHILD, args, a.run_timeout)
    if info.get("oom") or info.get("error"):
        return {"wall_s": wall, **info}
    if not (run / "metrics.jsonl").is_file():
        return {"wall_s": wall, **info, "error": "no metrics.jsonl written"}
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    lines = [x for x in lines if "logps/chosen" in x]
    return {"wall_s": wall, **info, "step_seconds": [x["seconds"] for x in lines],
            "logps_chosen": lines[0]["logps/chosen"], "logps_rejected": lines[0]["logps/rejected"],
            "loss": lines[0]["loss"], "phases": json.loads((run / "timings.json").read_text())}


def summarize(r: dict, info: dict, a) -> dict:
    """Steady-state step time, tokens/s, process pairs/s and MFU of one finished run."""
    steps = r.get("step_seconds") or []
    if not steps:
        return r
    steady = steps[max(1, len(steps) // 4):] or steps
    step_s = statistics.median(steady)
    pair_tokens = info["mean_prompt"] + info["mean_responses"]
    out = dict(r, steps=len(steps), steady_step_s=step_s,
               tokens_per_s=a.batch * pair_tokens / step_s,
               pairs_per_s_process=a.batch * len(steps) / r["wall_s"])
    if not a.smoke:
        out["mfu"] = a.batch * train_flops_per_pair(info) / step_s / (a.peak_tflops * 1e12)
    return out


def table(rows: list[dict], info: dict) -> str:
    base = next((r for r in rows if r["impl"] == "trl-default" and "tokens_per_s" in r), None)
    lines = [f"{info['shape']}, {info['mix']} (mean prompt {info['mean_prompt']:.0f}, responses "
             f"{info['mean_responses']:.0f} tokens per pair)", "",
             "| run | steady tokens/s | vs TRL default | pairs/s (process) | peak GPU MiB | MFU "
             "| step-1 logps chosen | rejected | loss |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("oom"):
            lines.append(f"| {r['impl']} | OOM | | | {r.get('peak_gpu_mib', 0):.0f} | | | | |")
            continue
        if "tokens_per_s" not in r:
            lines.append(f"| {r['impl']} | failed: {r.get('error', '?')} | | | | | | | |")
            continue
        vs = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "n/a"
        mfu = f"{100 * r['mfu']:.1f}%" if "mfu" in r else "n/a"
        lines.append(f"| {r['impl']} | {r['tokens_per_s']:,.0f} | {vs} | {r['pairs_per_s_process']:.2f} "
                     f"| {r['peak_gpu_mib']:.0f} | {mfu} | {r['logps_chosen']:.2f} "
                     f"| {r['logps_rejected']:.2f} | {r['loss']:.5f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true",
                    help="the CPU dry run: the tiny model, short pairs, 4 steps of 4 pairs, fp32")
    ap.add_argument("--models", default=None,
                    help="comma-separated shapes: qwen2.5-1.5b, llama-3.2-1b, tiny "
                         "(default: the two real shapes; --smoke: tiny)")
    ap.add_argument("--mixes", default=None,
                    help="comma-separated length mixes: chat, long-prompt, smoke "
                         "(default: chat,long-prompt; --smoke: smoke)")
    ap.add_argument("--runs", default=None,
                    help=f"comma-separated runs, in order (default: {','.join(RUNS)}; --smoke: "
                         f"{','.join(SMOKE_RUNS)})")
    ap.add_argument("--batch", type=int, default=None, help="pairs per step (default 8; smoke 4)")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="optimizer steps per run (default 16; smoke 4)")
    ap.add_argument("--pairs", type=int, default=None,
                    help="pairs in the data (default: batch x steps)")
    ap.add_argument("--peak-tflops", type=float, default=989.0,
                    help="the GPU's dense bf16 peak for MFU (default 989: an H200)")
    ap.add_argument("--run-timeout", type=float, default=600.0,
                    help="seconds one run may take before it is recorded as timed out (default 600)")
    ap.add_argument("--out", default=str(HERE / "out"), help="output folder (default bench/out)")
    a = ap.parse_args()
    a.runs = a.runs or ",".join(SMOKE_RUNS if a.smoke else RUNS)
    a.batch = a.batch or (4 if a.smoke else 8)
    a.max_steps = a.max_steps or (4 if a.smoke else 16)
    models = (a.models or ("tiny" if a.smoke else "qwen2.5-1.5b,llama-3.2-1b")).split(",")
    mixes = (a.mixes or ("smoke" if a.smoke else "chat,long-prompt")).split(",")
    runners = {
        "prefalign": lambda fx, w: run_prefalign(fx, a, None, w),
        "prefalign-varlen": lambda fx, w: run_prefalign(fx, a, "varlen", w),
        "prefalign-flex": lambda fx, w: run_prefalign(fx, a, "flex_attention", w),
        "trl-default": lambda fx, w: run_trl(fx, a, True, False, w),
        "trl-fast": lambda fx, w: run_trl(fx, a, False, True, w),
    }
    unknown = [r for r in a.runs.split(",") if r not in runners]
    if unknown:
        ap.error(f"unknown run(s) {', '.join(unknown)}; choose from {', '.join(runners)}")
    import torch

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results, tables = [], []
    for shape in models:
        for mix in mixes:
            fx = out / f"fixture-{shape}-{mix}-n{a.pairs or a.batch * a.max_steps}"
            fx.mkdir(parents=True, exist_ok=True)
            info = build_fixture(fx, shape, mix, a.pairs or a.batch * a.max_steps)
            rows = []
            for name in a.runs.split(","):
                with tempfile.TemporaryDirectory(prefix=f"prefalign-bench-{name}-") as work:
                    row = summarize({"impl": name, "shape": shape, "mix": mix,
                                     **runners[name](fx, Path(work))}, info, a)
                rows.append(row)
                results.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "step_seconds"}), flush=True)
                (out / "gpu-compare.json").write_text(json.dumps(
                    {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU",
                     "batch": a.batch, "max_steps": a.max_steps, "runs": results}, indent=2))
            tables.append(table(rows, info))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (smoke: fp32)"
    print(f"\n{device}; sigmoid DPO, batch {a.batch}, {a.max_steps} steps per run\n")
    print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
