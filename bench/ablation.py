"""Where the speed comes from: one DPO training step (forward + backward, batch of 4 pairs) on
the benchmark fixture, adding one engine feature at a time.

    python bench/ablation.py [--prompt-len 384] [--steps 4]

Rows (each includes the policy forward + backward; the reference forward where stated):
  1 stacked, full logits, reference every step   TRL's layout: [prompt+chosen ; prompt+rejected],
                                                  padded, LM head over every position
  2 + LM head on response positions only (chunked)
  3 + prefix sharing (prompt once per pair)
  4 + packing (pairs share rows)
  5 + reference cache (no reference forward in the step)
Prints median seconds per step and the speed-up over row 1.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SHARED_BENCH = HERE.parent.parent / "shared" / "bench"


@dataclass
class Ex:
    prompt_ids: list
    responses: list
    index: int = 0


def stacked_full_logits(model, pairs, pad_id):
    """TRL-style: two rows per pair, right-padded, logits at every position."""
    rows = [p.prompt_ids + r for p in pairs for r in p.responses]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id)
    mask = torch.zeros_like(ids)
    comp = torch.zeros_like(ids, dtype=torch.bool)
    i = 0
    for p in pairs:
        for r in p.responses:
            row = p.prompt_ids + r
            ids[i, :len(row)] = torch.tensor(row)
            mask[i, :len(row)] = 1
            comp[i, len(p.prompt_ids):len(row)] = True
            i += 1
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(2, ids[:, 1:, None]).squeeze(2)
    return (logp * comp[:, 1:]).sum(1).view(len(pairs), 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt-len", type=int, default=384)
    ap.add_argument("--steps", type=int, default=4)
    a = ap.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefalign.data import load_records, tokenize_records
    from prefalign.engine.forward import PackedLogProbModel
    from prefalign.engine.layout import pack

    fx = HERE / "out" / f"fixture-p{a.prompt_len}-r128-n64"
    if not (fx / "pairs.jsonl").exists():
        subprocess.run([sys.executable, str(SHARED_BENCH / "make_fixture.py"), str(fx),
                        "--prompt-len", str(a.prompt_len)], check=True, capture_output=True)
    tok = AutoTokenizer.from_pretrained(fx / "model")
    records, _ = load_records(fx / "pairs.jsonl")
    examples, _ = tokenize_records(records[:4], tok)
    pairs = [Ex(list(e.prompt_ids), [list(r) for r in e.responses]) for e in examples]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(fx / "model", dtype=torch.float32,
                                                 attn_implementation="sdpa")
    ref = AutoModelForCausalLM.from_pretrained(fx / "model", dtype=torch.float32,
                                               attn_implementation="sdpa").eval()
    fast, fast_ref = PackedLogProbModel(model), PackedLogProbModel(ref)
    pad = tok.pad_token_id
    unshared = [Ex(p.prompt_ids, [r]) for p in pairs for r in p.responses]

    def as_pairs(logps):  # [2E, 1] -> [E, 2]
        return logps.view(-1, 2)

    variants = {
        "1 stacked, full logits, reference every step":
            (lambda: stacked_full_logits(model, pairs, pad),
             lambda: stacked_full_logits(ref, pairs, pad)),
        "2 + LM head on responses only (chunked)":
            (lambda: as_pairs(fast(pack(unshared, pad_token_id=pad, row_capacity=1)).logps),
             lambda: as_pairs(fast_ref(pack(unshared, pad_token_id=pad, row_capacity=1)).logps)),
        "3 + prefix sharing":
            (lambda: fast(pack(pairs, pad_token_id=pad, row_capacity=1)).logps,
             lambda: fast_ref(pack(pairs, pad_token_id=pad, row_capacity=1)).logps),
        "4a + packing, all pairs in one long row":
            (lambda: fast(pack(pairs, pad_token_id=pad, row_capacity=10**6)).logps,
             lambda: fast_ref(pack(pairs, pad_token_id=pad, row_capacity=10**6)).logps),
        "4 + packing, rows up to the longest pair (the trainer's default)":
            (lambda: fast(pack(pairs, pad_token_id=pad)).logps,
             lambda: fast_ref(pack(pairs, pad_token_id=pad)).logps),
        "5 + reference cache": (lambda: fast(pack(pairs, pad_token_id=pad)).logps, None),
    }
    cached = None
    results = {}
    for name, (policy_fn, ref_fn) in variants.items():
        times = []
        for _ in range(a.steps + 1):
            t0 = time.perf_counter()
            logps = policy_fn()
            if ref_fn is not None:
                with torch.no_grad():
                    ref_logps = ref_fn()
                cached = ref_logps
            else:
                ref_logps = cached
            h = (logps[:, 0] - ref_logps[:, 0]) - (logps[:, 1] - ref_logps[:, 1])
            loss = -torch.nn.functional.logsigmoid(0.1 * h).mean()
            loss.backward()
            model.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t0)
        results[name] = statistics.median(times[1:])
    base = results[next(iter(results))]
    print(f"\nfixture prompts {a.prompt_len // 2}-{a.prompt_len} tokens, 4 pairs per step, "
          f"{torch.get_num_threads()} threads\n")
    print("| variant | s/step | speed-up |")
    print("|---|---|---|")
    for name, t in results.items():
        print(f"| {name} | {t:.3f} | {base / t:.2f}x |")


if __name__ == "__main__":
    main()
