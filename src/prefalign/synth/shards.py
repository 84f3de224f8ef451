"""Synth across workers: each samples its share of the prompts into its own durable log, and one
idempotent merge builds the output.

``--shard I/N`` (0 <= I < N) makes this process worker I of N; under ``torchrun`` or
``accelerate launch`` the CLI takes I and N from ``RANK`` and ``WORLD_SIZE`` when ``--shard`` is
not given. A cluster's scheduler (a Slurm array: ``--shard $SLURM_ARRAY_TASK_ID/$N``) starts the
workers; nothing here schedules work. Worker I takes the chunks ``I, I + N, I + 2N, ...`` of
``--chunk-size`` prompts (whole chunks: their batches are the single worker's, so with per-sample
seeds each sample is the one a single worker draws) and logs them in
``OUTPUT.shard-I-of-N.progress.jsonl``, resumable as a single worker's log is (a killed worker is
rerun with the same command). The log's header holds the settings' fingerprint, the shard and
the chunk size.

The merge (``--merge``, or the worker that finishes last, when no other one holds the output)
checks that every worker's log was written with this command's settings, the same N and chunk
size, and holds its whole share, then builds ``OUTPUT`` and its manifest from all of them exactly
as a single worker builds them from its log (the same records, in prompt order); the manifest's
``workers`` records N and each worker's share. Rerunning the merge writes the same output.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from prefalign.core import identity
from prefalign.core.durable_log import DurableLog

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def log_path(self, output: Path) -> Path:
        return output.with_name(f"{output.name}.shard-{self.index}-of-{self.count}"
                                ".progress.jsonl")

    def lock_path(self, output: Path) -> Path:
        return output.with_name(f"{output.name}.shard-{self.index}-of-{self.count}.lock")

    def owns(self, chunk_number: int) -> bool:
        return chunk_number % self.count == self.index

    def header(self, fp: dict[str, Any], chunk_size: int) -> dict[str, Any]:
        return {"header": fp, "shard": [self.index, self.count], "chunk_size": chunk_size}


def parse_shard(text: str | None) -> Shard | None:
    """``I/N`` as a Shard (None for none, or for 0/1: a single worker)."""
    if not text:
        return None
    match = _SPEC.match(str(text))
    if not match:
        raise ValueError(f"--shard {text!r}: write I/N, worker I (from 0) of N, e.g. 0/4")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text!r}: I must be in 0..N-1 and N >= 1")
    return None if count == 1 else Shard(index, count)


def from_launcher() -> str:
    """``RANK/WORLD_SIZE`` when a launcher (torchrun, accelerate launch) started several
    processes, else empty."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    return f"{int(os.environ.get('RANK', '0'))}/{world}" if world > 1 else ""


def chunk_numbers(prompts: Sequence, chunk_size: int) -> dict[int, int]:
    """Each prompt's chunk number, by prompt index."""
    return {p.index: n // chunk_size for n, p in enumerate(prompts)}


def find_logs(output: Path) -> tuple[int, dict[int, Path]]:
    """N and the workers' logs beside ``output``, by worker index (0 and none when there are
    none); one line when logs of different N lie there."""
    pattern = re.compile(re.escape(output.name) + r"\.shard-(\d+)-of-(\d+)\.progress\.jsonl$")
    found: dict[int, dict[int, Path]] = {}
    for path in output.parent.glob(f"{output.name}.shard-*-of-*.progress.jsonl"):
        match = pattern.match(path.name)
        if match:
            found.setdefault(int(match.group(2)), {})[int(match.group(1))] = path
    if len(found) > 1:
        raise ShardMismatch(f"{output}: worker logs for {' and '.join(map(str, sorted(found)))} "
                         "workers lie beside it; keep one set")
    return next(iter(found.items()), (0, {}))


def header_differences(found: dict, expected: dict) -> str:
    """What differs between two log headers: the settings by name, then the shard's."""
    if not isinstance(found, dict) or not isinstance(found.get("header"), dict):
        return "no header"
    rest = lambda h: {k: v for k, v in h.items() if k != "header"}  # noqa: E731
    return "; ".join((identity.differences(found["header"], expected["header"])
                      + identity.differences(rest(found), rest(expected)))[:6])


class NotFinished(ValueError):
    """A worker's share is not (yet) in its log."""


class ShardMismatch(ValueError):
    """A worker's log does not fit this merge (other settings, another N)."""


def merged_entries(output: Path, prompts: Sequence, fp: dict[str, Any], chunk_size: int
                   ) -> tuple[list[dict], dict[str, Any]]:
    """Every worker's log entries, checked, and the manifest's ``workers``."""
    count, logs = find_logs(output)
    if not logs:
        raise NotFinished(f"{output}: no worker logs ({output.name}.shard-I-of-N.progress.jsonl)"
                          " beside it; run the workers (--shard I/N) first")
    missing_workers = sorted(set(range(count)) - set(logs))
    if missing_workers:
        raise NotFinished(f"{output}: no log of worker(s) {missing_workers} of {count} yet")
    chunks = chunk_numbers(prompts, chunk_size)
    entries, shares = [], []
    for index in range(count):
        shard, path = Shard(index, count), logs[index]
        log = DurableLog(path)
        head = log.entries[0] if log.entries else {}
        expected = shard.header(fp, chunk_size)
        if head != expected:
            what = header_differences(head, expected)
            raise ShardMismatch(f"{path} was written with other settings than this merge's "
                             f"({what}); rerun that worker with this command")
        share = {i for i, c in chunks.items() if shard.owns(c)}
        logged = {e["index"] for e in log.entries[1:]}
        if not share <= logged:
            raise NotFinished(f"{path}: worker {index} of {count} has {len(share & logged)} of "
                              f"its {len(share)} prompts; rerun it to finish its share")
        entries += log.entries[1:]
        shares.append({"shard": f"{index}/{count}", "prompts": len(share), "log": str(path),
                       "torn_lines_discarded": log.discarded})
    return entries, {"count": count, "chunk_size": chunk_size, "shares": shares}
