"""Which pairs to keep, end to end on CPU (well under two minutes): synth with RSO pairs, the
R.I.P. and implicit-margin filters, an audit of the result, then training on it.

A tiny random-weight model (built offline) answers arithmetic prompts; responses are scored by
``0.7 * exact_answer + 0.3 * answer_closeness`` (prefalign.synth.checks). Each step is the
command line a user would type (printed as it runs); with real models, swap the paths: the
margin filter's policy is the model about to be trained, its reference the SFT model.

    python examples/select_pairs.py [OUT]
"""

import random
import shlex
import sys
import tempfile
from pathlib import Path

from prefalign.cli import main as prefalign
from prefalign.data import write_jsonl


def run(*args: str) -> None:
    print("$ prefalign " + " ".join(shlex.quote(a) for a in args), flush=True)
    if prefalign(list(args)) != 0:
        raise SystemExit(f"prefalign {args[0]} failed")


def main(out: Path) -> None:
    policy, reference = out / "policy", out / "reference"
    run("tiny-model", str(reference), "--seed", "0")
    run("tiny-model", str(policy), "--seed", "1")
    rng = random.Random(0)
    rows = []
    for _ in range(24):
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        rows.append({"prompt": f"{a}+{b}=", "answer": a + b})
    write_jsonl(rows, out / "prompts.jsonl")
    pairs = out / "pairs.jsonl"
    run("synth", "--model", str(policy), "--prompts", str(out / "prompts.jsonl"),
        "--output", str(pairs),
        "--scorer", "0.7*verifier:prefalign.synth.checks:exact_answer"
                    "+0.3*verifier:prefalign.synth.checks:answer_closeness",
        "--n", "8", "--temperature", "1.0", "--max-new-tokens", "8", "--device", "cpu",
        # RSO: accept samples with probability exp((r - r_max)/beta), pair the accepted
        "--pairs", "rso:beta=0.3,accepted=4",
        # R.I.P.: drop pairs whose rejected score is in the lowest quarter, or whose gap is in
        # the top tenth; then keep the half with the smallest implicit reward margin
        "--filter", "rip:rejected_quantile=0.25,gap_quantile=0.9",
        "--filter", f"margin:model={policy},ref_model={reference},fraction=0.5,device=cpu",
        "--no-progress")
    run("data", "audit", str(pairs), "--model", str(policy), "--ref-model", str(reference),
        "--device", "cpu", "--output", str(out / "audit"))
    run("train", "--model", str(policy), "--ref-model", str(reference), "--data", str(pairs),
        "--objective", "sigmoid", "--max-steps", "3", "--batch-size", "2",
        "--output", str(out / "run"), "--no-progress")
    print(f"pairs: {pairs}\naudit: {out / 'audit' / 'audit.md'}\nmodel: {out / 'run' / 'model'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="select-")))
