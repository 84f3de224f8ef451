"""What identifies an input and a run: content hashes, run fingerprints and their differences.

Contents, not paths, identify models and data: a model folder or data file copied elsewhere is
the same input, a retrained model at the same path is not. Data files are hashed whole; model
weight files above 64 MiB by their size and 16 slices spread through them (retrained weights
differ everywhere), smaller files whole. Hidden files (caches, locks, temporaries) are skipped.

A *fingerprint* is a plain JSON mapping of everything that changes what a run computes; each
command says which of its settings enter it (train: `prefalign.train.run_state`, synth:
`prefalign.synth.job`, iterate: `prefalign.loop.iterate`) and builds it with
:func:`fingerprint`; :func:`differences` says in words what differs between a recorded one and
the current one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

_WHOLE_LIMIT = 64 << 20
_SLICES, _SLICE = 16, 64 << 10


# ---- content hashes ---------------------------------------------------------------------------
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


def file_sha256(path: str | os.PathLike) -> str:
    """The full SHA-256 of one file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def json_sha256(value: Any) -> str:
    """The full SHA-256 of ``value`` as sorted JSON (rows, settings)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stream_sha256(parts: Iterable[str]) -> str:
    """The full SHA-256 of ``parts`` one after another (without joining them in memory)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
    return h.hexdigest()


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


def model_identity(name: str | os.PathLike | None) -> str | None:
    """A model folder's (or cached hub model's) content hash; ``hub:NAME`` for one not on disk."""
    if not name:
        return None
    folder = local_model_dir(str(name))
    if folder is None:
        return f"hub:{name}"
    return files_identity(folder, sample=True)


def weights_identity(model) -> str:
    """An in-memory model's identity: every parameter's and buffer's bytes."""
    import torch

    h = hashlib.sha256()
    for name, p in model.state_dict().items():
        h.update(name.encode())
        # reshape(-1): a 0-dim buffer cannot be viewed as bytes as it is
        h.update(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def data_identity(source: Any) -> str | None:
    """A data file's or folder's content hash, a ``datasets.Dataset``'s own fingerprint, or the
    hash of rows given in memory."""
    if source is None or source == "":
        return None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return files_identity(path, sample=False) if path.exists() else f"missing:{source}"
    fingerprint = getattr(source, "_fingerprint", None)  # a datasets.Dataset
    if fingerprint:
        return f"dataset:{fingerprint}"
    return json_sha256(source)[:32]


# ---- fingerprints -----------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """``value`` as JSON keeps it: tuples as lists, non-finite floats as text."""
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def fingerprint(entries: dict[str, Any], cfg: Any = None, names: Iterable[str] = (), *,
                added: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run's fingerprint: ``entries`` (identities and derived values), the settings ``names``
    of ``cfg``, and the ``added`` settings (name -> default) only where they differ from their
    default (fields added after runs were recorded: those runs still match). Returned as it
    reads back from JSON, so a recorded one compares equal."""
    fp = dict(entries)
    for name in names:
        fp[name] = plain(getattr(cfg, name))
    for name, default in (added or {}).items():
        if getattr(cfg, name, default) != default:
            fp[name] = plain(getattr(cfg, name))
    return json.loads(json.dumps(fp, default=str))


def differences(recorded: dict[str, Any], current: dict[str, Any],
                display: tuple[str, ...] = ()) -> list[str]:
    """What differs, in words: ``lr 0.001 -> 0.01``, ``data: pairs.jsonl has other contents``.
    ``display`` keys (paths) are shown with their ``*_files`` entry, not compared themselves;
    mappings are compared entry by entry (``objective_args.beta 0.1 -> 0.2``)."""
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
        elif isinstance(old, dict) and isinstance(new, dict):
            out += [f"{key}.{d}" for d in differences(old, new)]
        else:
            out.append(f"{key} {old!r} -> {new!r}")
    return out
