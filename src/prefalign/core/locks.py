"""One writer per output: an exclusive lock held for as long as a run writes somewhere.

Usage (training holds ``OUTPUT/.prefalign.lock`` for the whole run; synth can hold one next to
its output file)::

    from prefalign.core.locks import exclusive_lock, LockHeldError

    with exclusive_lock(Path(output) / ".prefalign.lock", what=f"training output {output}"):
        ...  # only this process writes under ``output`` here

``exclusive_lock(path) -> context manager``: ``path`` is the lock file itself (created, with its
parent folders, if missing). The lock is ``fcntl.flock(LOCK_EX | LOCK_NB)`` on that file, so it
is released by the kernel when the holder exits or is killed (no stale locks after a crash), and
the file keeps the holder's PID so that a refused second writer can say who holds it. A second
``exclusive_lock`` on the same file fails at once with :class:`LockHeldError` (a ``ValueError``,
so the CLI prints it as one line) naming the holder's PID; it never waits. Two locks on the same
file from one process also conflict (each ``open`` is its own lock).

The lock file is left in place on exit: deleting it would let a third process lock a fresh
file while a second still holds the old, unlinked one. Where ``fcntl`` does not exist
(Windows), the lock is a no-op. Network file systems without ``flock`` support may not lock.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".prefalign.lock"


class LockHeldError(ValueError):
    """Another process holds the lock; ``holder_pid`` is its PID (None when unknown)."""

    def __init__(self, message: str, holder_pid: int | None = None, path: Path | None = None):
        super().__init__(message)
        self.holder_pid = holder_pid
        self.path = path


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text.split()[0]) if text else None
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def exclusive_lock(path: str | os.PathLike, *, what: str | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on the lock file ``path`` for the ``with`` block.

    Raises :class:`LockHeldError` at once, naming the holder's PID, when another process (or
    another open of the same file in this process) holds it. ``what`` names the protected
    thing in that message (default: the lock file's folder).
    """
    path = Path(path)
    if fcntl is None:  # pragma: no cover - Windows
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            who = f"PID {pid}" if pid is not None else "a process whose PID is not recorded yet"
            target = what or str(path.parent)
            raise LockHeldError(
                f"{target} is in use by another prefalign process ({who}, lock {path}); wait "
                "for it to finish, stop it, or write elsewhere", pid, path) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield path
        finally:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
