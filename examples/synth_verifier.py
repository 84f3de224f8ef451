"""Synthesize preference pairs with a programmatic verifier, end to end on CPU (< 1 minute).

A tiny random-weight model (built offline) answers arithmetic prompts; each response is scored
by ``0.7 * exact_answer + 0.3 * answer_closeness`` (both in prefalign.synth.checks); West-of-N pairs
are written to OUT/pairs.jsonl with a manifest beside them. A random model is rarely right, so
most of the signal here comes from the partial-credit term; with a real model, swap the path.

    python examples/synth_verifier.py [OUT]
"""

import json
import random
import sys
import tempfile
from pathlib import Path

from prefalign.data import write_jsonl
from prefalign.synth import SynthConfig, run_synth
from prefalign.demo.tiny_models import build_tiny_model


def main(out: Path) -> None:
    model = build_tiny_model(out / "tiny-model", family="llama", tokenizer="char")
    rng = random.Random(0)
    rows = []
    for _ in range(12):
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        rows.append({"prompt": [{"role": "user", "content": f"What is {a}+{b}? Answer with a number."}],
                     "answer": a + b})
    write_jsonl(rows, out / "prompts.jsonl")
    result = run_synth(SynthConfig(
        model=str(model), prompts=str(out / "prompts.jsonl"), output=str(out / "pairs.jsonl"),
        scorer="0.7*verifier:prefalign.synth.checks:exact_answer"
               "+0.3*verifier:prefalign.synth.checks:answer_closeness",
        n=6, pairs="west-of-n", temperature=1.0, max_new_tokens=16, chunk_size=4, seed=0))
    print(json.dumps(result.counts, indent=2))
    print(f"pairs: {result.output}\nmanifest: {result.manifest}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="synth-example-")))
