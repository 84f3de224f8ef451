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

Contents, not paths, identify the model and the data: a model folder or data file that was
copied elsewhere is the same input, a retrained model at the same path is not. Data files are
hashed whole; model weight files above 64 MiB are identified by their size and a hash of 16
slices spread through them (retrained weights differ everywhere), smaller files whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
ADDED_FIELDS = {"keep_whitespace_variants": False}
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
}
# shown in messages, compared through their *_files entries
_DISPLAY = ("model", "ref_model", "data", "eval_data")


class RunMismatchError(ValueError):
    """OUTPUT holds another run (or files nothing identifies); resuming it would mix runs."""


class OutputError(ValueError):
    """The output location cannot be written (read-only, full, not a folder)."""


# ---- identities ----------------------------------------------------------------------------
_WHOLE_LIMIT = 64 << 20
_SLICES, _SLICE = 16, 64 << 10


def _hash_file(path: Path, h, *, sample: bool) -> None:
    size = path.stat().st_size
    h.update(f"{path.name}:{size}:".encode())
    with open(path, "rb") as f:
        if not sample or size <= _WHOLE_LIMIT:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
            return
        for i in range(_SLICES):
            f.seek((size - _SLICE) * i // (_SLICES - 1))
            h.update(f.read(_SLICE))


def files_identity(path: str | os.PathLike, *, sample: bool) -> str:
    """A content hash of a file, or of every file under a folder (relative names included)."""
    root = Path(path)
    h = hashlib.sha256()
    if root.is_file():
        _hash_file(root, h, sample=sample)
        return h.hexdigest()[:32]
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):  # caches, locks, temporaries
            continue
        h.update(str(rel).encode() + b"\0")
        _hash_file(f, h, sample=sample)
    return h.hexdigest()[:32]


def local_model_dir(name: str) -> Path | None:
    """The folder of ``name``: a local path, or its snapshot in the Hugging Face cache."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(str(name), "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id: not in the cache
        return None
    return Path(found).parent if isinstance(found, str) else None


def model_identity(name: str | None) -> str | None:
    if not name:
        return None
    folder = local_model_dir(name)
    if folder is None:
        return f"hub:{name}"
    return files_identity(folder, sample=True)


def data_identity(source: Any) -> str | None:
    if source is None or source == "":
        return None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return files_identity(path, sample=False) if path.exists() else f"missing:{source}"
    fingerprint = getattr(source, "_fingerprint", None)  # a datasets.Dataset
    if fingerprint:
        return f"dataset:{fingerprint}"
    h = hashlib.sha256(json.dumps(source, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def run_fingerprint(cfg, *, objective: str, hparams: dict[str, Any], reference: str,
                    processes: int, max_length: int | None) -> dict[str, Any]:
    """Everything that changes what the run computes (see the module docstring)."""
    fp: dict[str, Any] = {
        "model": str(cfg.model), "model_files": model_identity(cfg.model),
        "ref_model": cfg.ref_model, "ref_model_files": model_identity(cfg.ref_model),
        "data": str(cfg.data) if isinstance(cfg.data, (str, os.PathLike)) else "<in memory>",
        "data_files": data_identity(cfg.data),
        "eval_data": (str(cfg.eval_data) if isinstance(cfg.eval_data, (str, os.PathLike))
                      else None if cfg.eval_data is None else "<in memory>"),
        "eval_data_files": data_identity(cfg.eval_data),
        "objective": objective, "objective_args": {k: _plain(v) for k, v in sorted(hparams.items())},
        "reference": reference, "processes": processes,
    }
    for name in RESULT_FIELDS:
        fp[name] = _plain(getattr(cfg, name))
    for name, default in ADDED_FIELDS.items():
        if getattr(cfg, name, default) != default:
            fp[name] = _plain(getattr(cfg, name))
    fp["max_length"] = max_length  # the effective one (the model's positions when unset)
    return fp


def differences(recorded: dict[str, Any], current: dict[str, Any],
                display: tuple[str, ...] = _DISPLAY) -> list[str]:
    """What differs, in words: ``lr 0.001 -> 0.01``, ``data: pairs.jsonl has other contents``.
    ``display`` keys are shown with their ``*_files`` entry, not compared themselves."""
    out = []
    for key in sorted(set(recorded) | set(current)):
        if key in display:
            continue
        old, new = recorded.get(key), current.get(key)
        if old == new:
            continue
        if key.endswith("_files"):
            what = key[: -len("_files")]
            was, now = recorded.get(what), current.get(what)
            if old is None or new is None:
                out.append(f"{what} {was!r} -> {now!r}")
            elif was is None and now is None:
                out.append(f"{what}: other contents")
            elif was == now:
                out.append(f"{what}: {now} has other contents than when the run started")
            else:
                out.append(f"{what} {was} -> {now} (other contents)")
        elif key == "objective_args":
            keys = sorted(set(old or {}) | set(new or {}))
            out += [f"{key}.{k} {(old or {}).get(k)!r} -> {(new or {}).get(k)!r}"
                    for k in keys if (old or {}).get(k) != (new or {}).get(k)]
        else:
            out.append(f"{key} {old!r} -> {new!r}")
    return out


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
    diffs = differences(record["fingerprint"], fingerprint)
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
    atomic_write_text(output / RUN_FILE, json.dumps(record, indent=2, default=str))


# ---- writing --------------------------------------------------------------------------------
class writing:
    """``with writing(path): ...``: an OSError while writing ``path`` (a full disk, a
    read-only file system, a quota) becomes one line naming the path."""

    def __init__(self, path: str | os.PathLike):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is None or isinstance(error, OutputError):
            return False
        if isinstance(error, OSError) or type(error).__name__ == "SafetensorError":
            reason = getattr(error, "strerror", None) or str(error)
            raise OutputError(f"could not write {self.path}: {reason}") from error
        return False


def atomic_write_text(path: Path, text: str) -> None:
    with writing(path):
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


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
def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_inputs_vs_output(output: str | os.PathLike, *, models: dict[str, Any] = (),
                           data: dict[str, Any] = ()) -> None:
    """Before any work: refuse an OUTPUT that would overwrite or delete the run's own inputs.

    ``models`` (flag -> model name or folder): OUTPUT must not be the model's folder, a folder
    inside it, or a folder holding it (the run writes config.json, model/, ... into OUTPUT).
    ``data`` (flag -> data file or folder): it must not lie in the files a run writes in OUTPUT
    (RUN_FILES, which --overwrite and a fresh start delete). Raises OutputError (one line)."""
    out = _real(output)
    managed = [out / name for name in RUN_FILES]
    for flag, name in dict(models).items():
        if not name:
            continue
        path = Path(name).expanduser()
        if not path.exists():
            continue  # a hub id (or a missing folder, which require_model reports)
        folder = _real(path)
        if _inside(out, folder) or _inside(folder, out):
            how = ("is" if out == folder else
                   "is inside" if _inside(out, folder) else "contains")
            raise OutputError(f"--output {output} {how} {flag} {name}: training would overwrite "
                              "or delete that model; choose an --output folder apart from it")
    for flag, source in dict(data).items():
        if not isinstance(source, (str, os.PathLike)) or not source:
            continue
        path = _real(source)
        if any(_inside(path, m) or _inside(m, path) for m in managed):
            raise OutputError(f"{flag} {source} lies in what a run writes in --output {output} "
                              f"({', '.join(RUN_FILES)}), which --overwrite or a fresh start "
                              "deletes; move it out of there first")
