#!/usr/bin/env python
"""Which prefalign files and functions one preference pair passes from its JSONL line to its
loss: a tiny model, a one-pair file, one training step traced (``sys.setprofile``) from the
data file's reading to the objective's loss. Prints the files in the order first entered, with
how many distinct functions of each ran. Used for docs/architecture.md:

    python scripts/pair_path.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src" / "prefalign")


def main() -> int:
    from prefalign.demo.tiny_models import build_tiny_model
    from prefalign.train import TrainConfig, Trainer

    tmp = Path(tempfile.mkdtemp())
    model = build_tiny_model(tmp / "model")
    data = tmp / "pairs.jsonl"
    data.write_text(json.dumps({"prompt": "2+2=", "chosen": "4", "rejected": "5"}) + "\n")
    trainer = None
    seen: OrderedDict[str, set[str]] = OrderedDict()
    calls = 0
    # skipped: the trainer's set-up that is not on a pair's path (checks, output folder, model
    # loading, optimizer) -- only the data's reading and the step are traced
    on_path = {"prepare_examples", "_run_step"}
    depth = [0]

    def profile(frame, event, arg):
        nonlocal calls
        if event not in ("call", "return"):
            return
        code = frame.f_code
        if event == "call" and code.co_name in on_path and code.co_filename.startswith(SRC):
            depth[0] += 1
        if depth[0] and event == "call" and code.co_filename.startswith(SRC):
            rel = code.co_filename[len(SRC) + 1:]
            seen.setdefault(rel, set()).add(code.co_name)
            calls += 1
        if event == "return" and code.co_name in on_path and code.co_filename.startswith(SRC):
            depth[0] -= 1

    cfg = TrainConfig(model=str(model), data=str(data), output=str(tmp / "out"), max_steps=1,
                      batch_size=1, progress=False, cache_dir=str(tmp / "cache"))
    sys.setprofile(profile)
    try:
        trainer = Trainer(cfg)
        trainer.train()
    finally:
        sys.setprofile(None)
    print(f"{len(seen)} files, {sum(len(f) for f in seen.values())} distinct functions, "
          f"{calls} calls from the JSONL line to the loss (one pair, one step):")
    for rel, functions in seen.items():
        print(f"  {rel:34s} {len(functions):3d}  {', '.join(sorted(functions))[:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
