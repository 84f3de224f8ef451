"""An append-only JSONL log that survives being killed at any moment.

Each append writes whole lines in one ``write``, then ``flush`` and ``fsync``, so after a crash the
file holds every appended batch of lines except possibly a torn last line. Opening the log
detects a last line that is not newline-terminated or is not valid JSON, cuts it off (the file is
truncated back to the last complete line), counts it in ``discarded`` and logs a warning naming
the file. Used by synth jobs (their progress log) and by training (``metrics.jsonl``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

from .files import atomic_write_text

log = logging.getLogger(__name__)


class DurableLog:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.discarded = 0
        self.entries: list[dict[str, Any]] = []
        if self.path.exists():
            self._recover()

    def _recover(self) -> None:
        data = self.path.read_bytes()
        good_end, pos = 0, 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:  # torn last line: no newline
                self.discarded += 1
                break
            line = data[pos:nl]
            if line.strip():
                try:
                    self.entries.append(json.loads(line.decode("utf-8")))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    if data.find(b"\n", nl + 1) >= 0 or data[nl + 1:].strip():
                        line_no = data.count(b"\n", 0, pos) + 1
                        raise ValueError(
                            f"{self.path}, line {line_no}: not valid JSON "
                            "in the middle of the log; the log is damaged (not by a crash, which "
                            "can only tear the last line); delete it to start over") from None
                    self.discarded += 1
                    break
            pos = good_end = nl + 1
        if good_end < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())
            log.warning("%s: discarded a torn last line (%d bytes; a write was interrupted, e.g. "
                        "by a crash or a full disk); the %d complete lines before it are kept",
                        self.path, len(data) - good_end, len(self.entries))

    def append(self, entries: Iterable[dict[str, Any]]) -> None:
        entries = list(entries)
        if not entries:
            return
        text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if new:  # make the new directory entry durable too
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self.entries.extend(entries)

    def rewrite(self, entries: Iterable[dict[str, Any]]) -> None:
        """Replace the whole log with ``entries``, atomically (a temporary file, fsync, rename):
        a crash leaves either the old log or the new one."""
        entries = list(entries)
        text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
        atomic_write_text(self.path, text)
        self.entries = entries
