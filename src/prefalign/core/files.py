"""Writing files so that a crash or a full disk never leaves half of one, and says so in one line.

* :func:`atomic_path`: a temporary path beside the target (a file or a folder, written by any
  code) moved into place when the block ends without error, removed otherwise;
* :func:`atomic_write` / :func:`atomic_write_text` / :func:`atomic_write_json`: an open file on
  such a path, flushed and fsynced before the rename;
* :func:`move_into_place`: the rename itself, for a temporary folder several processes fill
  (a checkpoint);
* :class:`writing`: an OSError while writing becomes an :class:`OutputError` naming the path;
* :func:`real_path` and :func:`is_inside`: where a path really is, to keep outputs off inputs.

Readers see either the old file or the complete new one. Temporary names start with a dot and
hold ``.tmp-``, so content hashes (`prefalign.core.identity`) and clean-ups skip them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator


class OutputError(ValueError):
    """The output location cannot be written (read-only, full, not a folder)."""


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


def real_path(path: str | os.PathLike) -> Path:
    """``path`` with ``~``, links and ``..`` resolved (to compare an output with the inputs)."""
    return Path(os.path.realpath(Path(path).expanduser()))


def is_inside(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or lies under it (both resolved)."""
    return path == folder or folder in path.parents


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path`` (``.NAME.tmp-PID-RANDOM``)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def move_into_place(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename ``tmp`` to ``path``, replacing a file or a folder already there."""
    tmp, path = Path(tmp), Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """``with atomic_path(p) as tmp:`` write a file or a folder at ``tmp``; it replaces ``p``
    when the block ends, or is removed if the block raises. Write errors name ``p``."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(path)
        try:
            yield tmp
            move_into_place(tmp, path)
        except BaseException:
            _remove(tmp)
            raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w"):
    """An open file (text in UTF-8, or ``mode="wb"``) that replaces ``path`` when closed."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, value: Any, **dump) -> None:
    with atomic_write(path) as f:
        json.dump(value, f, **{"indent": 2, "default": str, **dump})
