"""Running `prefalign train` in 1..N CPU processes for the multi-process tests (a module of its
own: `conftest` names clash across folders)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FSDP_CONFIG = ROOT / "examples" / "accelerate" / "fsdp.yaml"
ZERO3_CONFIG = ROOT / "examples" / "accelerate" / "deepspeed_zero3.yaml"


def run_cli(args, nproc, *, config=None, env_extra=None, check=True, cuda=False):
    """``prefalign train ARGS`` in ``nproc`` processes: through ``accelerate launch
    --config_file CONFIG`` (its processes and precision set here), else torchrun (or one plain
    process). CPU processes over gloo unless ``cuda``. Returns the finished process."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    if not cuda:  # CPU processes even on a GPU machine (two ranks on one GPU ask for cuda:1)
        env["CUDA_VISIBLE_DEVICES"] = ""
    env.update(env_extra or {})
    module = ["-m", "prefalign.cli", "train", *args]
    if config is not None:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
               "--num_processes", str(nproc), "--mixed_precision", "no", *module]
    elif nproc == 1:
        cmd = [sys.executable, *module]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", *module]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def metrics(out):
    return [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def final_weights(out):
    from safetensors.torch import load_file

    return load_file(str(next((Path(out) / "model").glob("*.safetensors"))))
