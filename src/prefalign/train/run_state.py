"""Whose run is in OUTPUT: the run fingerprint, resuming only the same run, the output lock.

A training run writes ``OUTPUT/run.json`` before anything else: its *fingerprint*, every
input and setting that changes what the run computes (the model's and the data's contents,
the objective and its hyperparameters, the optimisation, precision, LoRA, the number of
processes; not progress bars, logging, checkpoint frequency or paths), and its status
(``running`` or ``finished`` with its step count). A later ``prefalign train --output OUTPUT``

- with the same fingerprint: resumes from the newest checkpoint (or starts over if there is
  none), and if that run finished, does nothing and says so;
- with another fingerprint: stops with one line naming what differs, before any model loads;
- on a folder holding training files but no ``run.json`` (an older prefalign, another tool):
  stops, since nothing says whose they are.

``--overwrite`` (``TrainConfig.overwrite``) deletes the files an earlier run left (its
checkpoints, metrics, model, eval and timings, ``run.json``, ``config.json``) and starts over;
other files in OUTPUT are left alone. Continuing a finished run for more steps is a new run:
``--model OUTPUT/model --output NEW``.

Contents, not paths, identify the model and the data (`prefalign.core.identity`): a model
folder or data file that was copied elsewhere is the same input, a retrained model at the same
path is not.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefalign.core.files import OutputError, atomic_write_json, is_inside, real_path
from prefalign.core.identity import (data_identity, differences, fingerprint, local_model_dir,
                                     model_identity, plain)

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
LOCK_FILE = ".prefalign.lock"
FORMAT = 1
# what a training run writes in OUTPUT (what --overwrite deletes)
RUN_FILES = ("checkpoints", "metrics.jsonl", "model", "eval.json", "timings.json", "config.json",
             RUN_FILE)
# files whose presence says a run (of some version) was here
_STATE_FILES = ("checkpoints", "metrics.jsonl", "model", "eval.json")

# TrainConfig fields that change what a run computes (besides model, data and objective,
# which enter by content or resolved name)
RESULT_FIELDS = (
    "max_length", "max_prompt_length", "truncation", "on_error", "lr", "batch_size",
    "grad_accum", "epochs", "max_steps", "warmup_steps", "warmup_ratio", "scheduler",
    "weight_decay", "max_grad_norm", "adam_betas", "seed", "dtype", "bf16",
    "attn_implementation", "router_aux_loss_coef", "disable_dropout", "lora", "lora_r",
    "lora_alpha", "lora_dropout", "lora_target_modules", "qlora", "merge_lora",
)
# fields added after runs were recorded: in the fingerprint only when not at their default, so a
# run recorded before them still resumes
ADDED_FIELDS = {"keep_whitespace_variants": False, "order": "shuffle", "pair_weight": None,
                "ref_update": "none", "ref_update_steps": 512, "ref_update_alpha": 0.6}
# entered by run_fingerprint under their own keys (models and data by content)
FINGERPRINTED = ("model", "ref_model", "data", "eval_data", "objective", "objective_args",
                 "reference")
# TrainConfig fields that do not change what a run computes, with the reason (a test checks that
# every field is in exactly one of RESULT_FIELDS, ADDED_FIELDS, FINGERPRINTED and this)
NOT_RESULT_FIELDS = {
    "output": "where the run goes", "cache_dir": "where reference log-probs are kept",
    "gradient_checkpointing": "recomputes the same activations",
    "chunk_tokens": "the LM head's chunking (tested equal)",
    "row_tokens": "the packed layout (tested equal)",
    "max_tokens_per_batch": "how a step is split into micro-batches (the same step: tested)",
    "ref_batch_tokens": "how the reference pass is batched (tested equal)",
    "logging_steps": "how often metrics are written", "eval_steps": "when eval runs",
    "save_steps": "when checkpoints are written", "save_total_limit": "how many are kept",
    "resume": "whether to continue", "overwrite": "whether to start over",
    "report_to": "trackers", "progress": "a progress bar",
    "trust_remote_code": "whether a model's own code may run (its files are fingerprinted)",
    "objective_weights": "folded into the objective's name (0.8*sigmoid+0.2*bco_pair+1*sft)",
}
# shown in messages, compared through their *_files entries
_DISPLAY = ("model", "ref_model", "data", "eval_data")


class RunMismatchError(ValueError):
    """OUTPUT holds another run (or files nothing identifies); resuming it would mix runs."""


def run_fingerprint(cfg, *, objective: str, hparams: dict[str, Any], reference: str,
                    processes: int, max_length: int | None) -> dict[str, Any]:
    """Everything that changes what the run computes (see the module docstring)."""
    entries: dict[str, Any] = {
        "model": str(cfg.model), "model_files": model_identity(cfg.model),
        "ref_model": cfg.ref_model,
        "ref_model_files": (model_identity(cfg.ref_model) if not isinstance(cfg.ref_model, list)
                            else [model_identity(m) for m in cfg.ref_model]),
        "data": str(cfg.data) if isinstance(cfg.data, (str, os.PathLike)) else "<in memory>",
        "data_files": data_identity(cfg.data),
        "eval_data": (str(cfg.eval_data) if isinstance(cfg.eval_data, (str, os.PathLike))
                      else None if cfg.eval_data is None else "<in memory>"),
        "eval_data_files": data_identity(cfg.eval_data),
        "objective": objective, "objective_args": {k: plain(v) for k, v in sorted(hparams.items())},
        "reference": reference, "processes": processes,
    }
    fp = fingerprint(entries, cfg, RESULT_FIELDS, added=ADDED_FIELDS)
    fp["max_length"] = max_length  # the effective one (the model's positions when unset)
    return fp


def run_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two training runs' fingerprints, in words."""
    return differences(recorded, current, display=_DISPLAY)


# ---- what OUTPUT holds ------------------------------------------------------------------------
def checkpoints(output: Path) -> list[Path]:
    """Finished checkpoints (``checkpoints/step-N`` with their ``trainer_state.json``), oldest first."""
    root = output / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith("step-")
             and p.name[5:].isdigit() and (p / "trainer_state.json").exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


@dataclass
class OutputState:
    status: str  # fresh | resume | finished
    checkpoint: Path | None = None
    record: dict[str, Any] | None = None


def read_record(output: Path) -> dict[str, Any] | None:
    path = output / RUN_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunMismatchError(f"{path}: unreadable ({e}); use a new --output folder, or "
                               "--overwrite to delete this run and start over") from None
    if not isinstance(record, dict) or "fingerprint" not in record:
        raise RunMismatchError(f"{path}: not a prefalign run record; use a new --output "
                               "folder, or --overwrite")
    return record


def inspect_output(output: Path, fingerprint: dict[str, Any], *, resume: bool = True) -> OutputState:
    """Decide what to do with what OUTPUT holds; raises RunMismatchError when it is another run."""
    fix = ("use a new --output folder, or --overwrite to delete it (checkpoints, metrics, model) "
           "and start over")
    record = read_record(output)
    if record is None:
        present = [n for n in _STATE_FILES if (output / n).exists()]
        if present:
            raise RunMismatchError(
                f"{output} holds training files ({', '.join(present)}) but no {RUN_FILE} saying "
                f"which run wrote them (an older prefalign, or another tool); {fix}")
        return OutputState("fresh")
    diffs = run_differences(record["fingerprint"], fingerprint)
    if diffs:
        shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise RunMismatchError(f"{output} holds another run ({shown}); {fix}")
    if record.get("status") == "finished" and (output / "model").exists():
        return OutputState("finished", record=record)
    found = checkpoints(output)
    if found and not resume:
        raise RunMismatchError(f"{output} holds an unfinished run of these settings with a "
                               f"checkpoint ({found[-1].name}) and resume is off; {fix}")
    if found:
        return OutputState("resume", found[-1], record)
    return OutputState("fresh", record=record)


def clear_run(output: Path) -> list[str]:
    """Delete what a training run wrote in ``output`` (RUN_FILES); other files stay."""
    removed = []
    for name in RUN_FILES:
        path = output / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(name)
    for stale in output.glob(".model.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return removed


def write_record(output: Path, fingerprint: dict[str, Any], status: str, **extra) -> None:
    record = {"format": FORMAT, "status": status, "fingerprint": fingerprint,
              "updated": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
    atomic_write_json(output / RUN_FILE, record)


def _bytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check_output_location(output: Path, *, model_bytes: int, checkpoint_bytes: int) -> None:
    """Before any work: OUTPUT is (or can be made) a writable folder with room for the final
    model and one checkpoint. Raises OutputError naming the path."""
    if output.exists() and not output.is_dir():
        raise OutputError(f"--output {output} is a file, not a folder")
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / f".write-test-{os.getpid()}"
        with open(probe, "wb") as f:
            f.write(b"x")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"--output {output}: cannot write there ({e.strerror or e})") from None
    need = model_bytes + checkpoint_bytes
    if need:
        free = shutil.disk_usage(output).free
        if free < need:
            parts = f"the model {_bytes(model_bytes)}" + (
                f", a checkpoint {_bytes(checkpoint_bytes)}" if checkpoint_bytes else "")
            raise OutputError(f"--output {output}: {_bytes(free)} free on its disk, and this run "
                              f"writes at least {_bytes(need)} ({parts}); free some space or "
                              "choose another --output")


def model_weight_bytes(name: str) -> int:
    folder = local_model_dir(name)
    if folder is None:
        return 0
    return sum(f.stat().st_size for f in folder.iterdir()
               if f.is_file() and f.suffix in (".safetensors", ".bin"))


# ---- inputs vs output -----------------------------------------------------------------------
def check_inputs_vs_output(output: str | os.PathLike, *, models: dict[str, Any] = (),
                           data: dict[str, Any] = ()) -> None:
    """Before any work: refuse an OUTPUT that would overwrite or delete the run's own inputs.

    ``models`` (flag -> model name or folder): OUTPUT must not be the model's folder, a folder
    inside it, or a folder holding it (the run writes config.json, model/, ... into OUTPUT).
    ``data`` (flag -> data file or folder): it must not lie in the files a run writes in OUTPUT
    (RUN_FILES, which --overwrite and a fresh start delete). Raises OutputError (one line)."""
    out = real_path(output)
    managed = [out / name for name in RUN_FILES]
    for flag, name in dict(models).items():
        if not name:
            continue
        path = Path(name).expanduser()
        if not path.exists():
            continue  # a hub id (or a missing folder, which require_model reports)
        folder = real_path(path)
        if is_inside(out, folder) or is_inside(folder, out):
            how = ("is" if out == folder else
                   "is inside" if is_inside(out, folder) else "contains")
            raise OutputError(f"--output {output} {how} {flag} {name}: training would overwrite "
                              "or delete that model; choose an --output folder apart from it")
    for flag, source in dict(data).items():
        if not isinstance(source, (str, os.PathLike)) or not source:
            continue
        path = real_path(source)
        if any(is_inside(path, m) or is_inside(m, path) for m in managed):
            raise OutputError(f"{flag} {source} lies in what a run writes in --output {output} "
                              f"({', '.join(RUN_FILES)}), which --overwrite or a fresh start "
                              "deletes; move it out of there first")
