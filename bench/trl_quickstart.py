"""TRL's DPO and KTO quickstart scripts, run as TRL users run them, for the reference values.

    .venv-bench/bin/python bench/trl_quickstart.py            # TRL itself: writes the JSON
    .venv/bin/python bench/trl_quickstart.py --prefalign      # the same scripts, import changed

Runs tests/compat/quickstart_{dpo,kto}.py (TRL's docs quickstart with a tiny local model and
data set from tests/compat/fixture.py) in this process, each as the script's own `__main__`,
and records each logged step (TRL's `trainer.state.log_history`) and the wall time. With TRL
(the default) the values go to tests/compat/trl_quickstart_reference.json, which
tests/compat/test_quickstart.py compares prefalign's run against; with --prefalign the import
line `from trl import` becomes `from prefalign.compat.trl import` and the values are printed
(and written to bench/out/quickstart-prefalign.json). Rerun to regenerate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPAT = ROOT / "tests" / "compat"
REFERENCE = COMPAT / "trl_quickstart_reference.json"
KEYS = ("loss", "logps/chosen", "logps/rejected", "rewards/chosen", "rewards/rejected",
        "rewards/margins", "rewards/accuracies", "kl")


def run_script(name: str, env: dict[str, str], prefalign: bool) -> dict:
    text = (COMPAT / name).read_text()
    if prefalign:
        text = text.replace("from trl import", "from prefalign.compat.trl import")
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        scope = {"__name__": "__main__", "__file__": str(COMPAT / name)}
        t0 = time.perf_counter()
        exec(compile(text, name, "exec"), scope)
        wall = time.perf_counter() - t0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    history = [{k: float(v) for k, v in entry.items() if k in KEYS or k == "step"}
               for entry in scope["trainer"].state.log_history if "loss" in entry]
    return {"steps": history, "wall_s": round(wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefalign", action="store_true", help="run with prefalign.compat.trl")
    ap.add_argument("--out", default=None, help="where the JSON goes")
    a = ap.parse_args()
    sys.path.insert(0, str(COMPAT))
    import fixture  # noqa: E402
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    work = Path(tempfile.mkdtemp(prefix="quickstart-"))
    model = str(fixture.build_model(work / "model"))
    results = {}
    for loss, script, data in (("dpo", "quickstart_dpo.py", fixture.dpo_data(work / "dpo.jsonl")),
                               ("kto", "quickstart_kto.py", fixture.kto_data(work / "kto.jsonl"))):
        results[loss] = run_script(script, {"QUICKSTART_MODEL": model, "QUICKSTART_DATA": str(data),
                                            "QUICKSTART_OUT": str(work / f"out-{loss}")}, a.prefalign)
    if a.prefalign:
        impl = "prefalign.compat.trl"
    else:
        import trl

        impl = f"trl {trl.__version__}"
    import transformers

    record = {"impl": impl, "transformers": transformers.__version__, "torch": torch.__version__,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", **results}
    out = Path(a.out) if a.out else (ROOT / "bench" / "out" / "quickstart-prefalign.json"
                                     if a.prefalign else REFERENCE)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
