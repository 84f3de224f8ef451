"""Programmatic verifiers: a Python function, or unit tests run in a subprocess.

``verifier:MODULE:FUNCTION`` imports ``FUNCTION(response, example)`` where ``response`` is the
generated text and ``example`` the prompt row (``prompt``, ``system`` and every other column, e.g.
``answer``). It returns a bool (pass = 1.0, fail = 0.0), a number, or ``(value, reason)``. An
exception counts as a failure scored 0.0, with the exception as its reason.

``tests:FIELD`` runs the response's code (its first fenced code block, or the whole text)
followed by the row's ``FIELD`` column (asserts, a test script) in ``python -I``, each run through
the launcher in `sandbox` (see it for the mechanics), in a session and process group of its own:

- **Full isolation** (Linux, where this user may make namespaces, or real root): an empty,
  private file system holding only the interpreter (read-only), ``/dev/null`` and friends and a
  private tmpfs ``/tmp`` of ``temp_mb`` as the working folder; own PID namespace (every process
  of the run ends with it: at the timeout, and when the test exits), own network namespace (no
  network, loopback down), own IPC namespace; as real root the test runs as ``nobody``.
- **Limits, always**: CPU time (``timeout`` + 1 s), address space (``memory_mb``), file size
  (``file_size_mb``), processes (``max_processes``: ``RLIMIT_NPROC`` counted in the run's own user
  namespace where there is one, else per user, approximately), no core files, no new privileges,
  an environment of PATH, HOME/TMPDIR (the working folder) and PYTHONHASHSEED only, no stdin.
- **Where full isolation is unavailable** the scorer falls back to a network namespace alone,
  else to Python's ``socket`` functions disabled in the interpreter, kills orphans it adopted as
  a child subreaper, and says so: a warning, and ``describe()`` (the manifest's
  ``scorer_details_this_run``) names what is not isolated and why (``isolation_unavailable``).
  ``isolation=full`` refuses to run without it.

Exit status 0 passes (1.0); anything else, timeouts included, fails (0.0) with a reason: the last
line of stderr, cut to 200 characters (or the limit that killed it). What a run printed is not
kept beyond that line. Full isolation contains mistakes and casual misbehaviour; it shares the
kernel with this machine, so for hostile code use a VM (see docs/synth.md).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .base import Group, Scorer, Score, per_group
from .registry import scorer_kind


def load_function(ref: str) -> Callable:
    module, sep, name = ref.rpartition(":")
    if not sep or not module or not name:
        raise ValueError(f"verifier {ref!r}: write MODULE:FUNCTION, e.g. mypkg.checks:exact_sum")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"verifier {ref!r}: cannot import it ({e}); is the module on PYTHONPATH?") from None
    if not callable(fn):
        raise ValueError(f"verifier {ref!r} is not callable")
    return fn


def _as_score(result) -> Score:
    reason = None
    if isinstance(result, tuple):
        result, reason = result
    if isinstance(result, bool):
        return Score(1.0 if result else 0.0, reason if reason else (None if result else "failed"))
    return Score(float(result), reason)


class FunctionVerifier(Scorer):
    name = "verifier"

    def __init__(self, ref: str):
        super().__init__()
        self.ref = ref
        self.fn = load_function(ref)

    def score(self, groups: Sequence[Group]) -> list[list[Score]]:
        out = []
        for item, responses in groups:
            example = item.example()
            row = []
            for text in responses:
                try:
                    score = _as_score(self.fn(text, example))
                except Exception as e:  # a verifier crash fails the response, with the reason
                    self.stats["exceptions"] += 1
                    score = Score(0.0, f"verifier raised {type(e).__name__}: {e}")
                self.stats["passed" if score.value and score.value > 0 else "failed"] += 1
                row.append(score)
            out.append(row)
        return out

    def describe(self) -> dict:
        return {"scorer": self.name, "function": self.ref}


_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)

_PRELUDE = """\
import socket as _s
def _no_network(*a, **k):
    raise OSError("network access is disabled in prefalign unit-test runs")
_s.socket = _no_network; _s.create_connection = _no_network; _s.getaddrinfo = _no_network
del _s
"""


def extract_code(text: str) -> str:
    match = _FENCE.search(text)
    return match.group(1) if match else text


log = logging.getLogger(__name__)

LAUNCHER = str(Path(__file__).with_name("sandbox.py"))
ISOLATION_MODES = ("full", "network", "none")  # best first
SETUP_FAILED = 125  # the launcher's exit status when a setup step failed (with a status message)
REASON_CHARS = 200  # the stderr tail kept in a failure reason
_SIGNALS = {signal.SIGKILL: "killed (the CPU-time limit, or out of memory)",
            signal.SIGXCPU: "the CPU-time limit was reached",
            signal.SIGXFSZ: "the file-size limit was exceeded"}


def readonly_paths() -> list[str]:
    """What a fully isolated run sees of this machine, read-only: the interpreter (its prefixes,
    the folder of its binary), the system library folders and the dynamic loader's cache."""
    from . import sandbox

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable)), "/etc/ld.so.cache",
             *sandbox.SYSTEM_LIBS}
    return sorted(os.path.abspath(p) for p in paths if p)


@dataclass
class RunResult:
    returncode: int | None  # None: the wall-clock timeout ended it
    stderr_tail: str
    setup_error: str | None
    processes: str | None = None  # how the launcher limited processes (per run, per user, not)


def run_isolated(code: str, *, isolation: str, timeout: float, memory_mb: int = 1024,
                 max_processes: int = 32, file_size_mb: int = 16,
                 temp_mb: int = 64) -> RunResult:
    """Run the Python source ``code`` through the launcher (`prefalign.scoring.sandbox`)
    with ``isolation`` ("full", "network" or "none") and the limits; see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="prefalign-tests-") as tmp:
        work, root = os.path.join(tmp, "work"), os.path.join(tmp, "root")
        os.mkdir(work)
        os.mkdir(root)
        script = os.path.join(work, "run_tests.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(code)
        read_end, write_end = os.pipe()
        cfg = {"isolation": isolation, "status_fd": write_end, "script": script, "workdir": work,
               "root_mount": root, "readonly": readonly_paths(), "python": sys.executable,
               "cpu_seconds": int(timeout) + 1, "memory_bytes": memory_mb << 20,
               "file_bytes": file_size_mb << 20, "max_processes": max_processes,
               "temp_mb": temp_mb}
        config = os.path.join(tmp, "sandbox.json")
        with open(config, "w", encoding="utf-8") as f:
            json.dump(cfg, f)
        with open(os.path.join(tmp, "stderr"), "w+b") as err:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", LAUNCHER, config], cwd=tmp, env={},
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                    pass_fds=(write_end,), start_new_session=True)
            finally:
                os.close(write_end)
            try:
                returncode = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop(proc)
                returncode = None
            os.set_blocking(read_end, False)
            try:
                status = os.read(read_end, 4096).decode("utf-8", "replace")
            except BlockingIOError:
                status = ""
            finally:
                os.close(read_end)
            err.seek(0, os.SEEK_END)
            err.seek(max(0, err.tell() - 4096))
            tail = err.read().decode("utf-8", "replace")
    notes = dict(line.split(": ", 1) for line in status.splitlines() if ": " in line)
    setup = notes.get("error") if returncode == SETUP_FAILED else None
    return RunResult(returncode, tail, setup, notes.get("processes"))


def _stop(proc: subprocess.Popen) -> None:
    """End a run and everything it started: the launcher first (it kills what it adopted and,
    in full isolation, takes the PID namespace down with it), then its whole process group;
    the launcher is not reaped before that, so the group id cannot have been reused."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
            break
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def probe_isolation(mode: str) -> str | None:
    """None when runs can be isolated with ``mode`` here, else why not (asked once per mode)."""
    return _probe(mode)[0]


def process_limit(mode: str) -> str | None:
    """How runs with ``mode`` have their processes limited here: "per run", "per user
    (approximate)" or "not limited" (None if the mode is unavailable)."""
    return _probe(mode)[1]


@functools.cache
def _probe(mode: str) -> tuple[str | None, str | None]:
    if mode != "none" and not sys.platform.startswith("linux"):
        return f"{sys.platform} has no Linux namespaces", None
    if mode == "full" and "/" in readonly_paths():
        return "the interpreter's prefix is / (it would expose the whole file system)", None
    probe = "import os\nassert not os.path.exists('/proc/self')\n" if mode == "full" else "pass\n"
    try:
        result = run_isolated(probe, isolation=mode, timeout=30)
    except OSError as e:
        return f"cannot start the launcher: {e}", None
    if result.setup_error:
        return result.setup_error, None
    if result.returncode != 0:
        last = _last_line(result.stderr_tail) or f"exit status {result.returncode}"
        return f"a trial run failed: {last}", None
    return None, result.processes


def network_namespaces_available() -> bool:
    """Whether unit-test runs can be cut off the network by a namespace here."""
    return probe_isolation("full") is None or probe_isolation("network") is None


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


_WHAT = {
    "full": {"network": "namespace", "filesystem": "private: empty root, the interpreter "
             "read-only, a private tmpfs /tmp", "processes": "own PID namespace (killed as a "
             "whole)"},
    "network": {"network": "namespace", "filesystem": "NOT isolated: the user's files can be "
                "read and written", "processes": "own session, killed as a group with the "
                "orphans it adopted"},
    "none": {"network": "python-sockets-disabled", "filesystem": "NOT isolated: the user's "
             "files can be read and written", "processes": "own session, killed as a group "
             "with the orphans it adopted"},
}


class UnitTestVerifier(Scorer):
    name = "tests"

    def __init__(self, field: str = "tests", *, timeout: float = 10.0, memory_mb: int = 1024,
                 workers: int = 2, max_processes: int = 32, file_size_mb: int = 16,
                 temp_mb: int = 64, isolation: str = "auto"):
        super().__init__()
        if isolation not in ("auto", "full"):
            raise ValueError(f"tests scorer: isolation={isolation!r}; use 'auto' (the best this "
                             "machine allows, with a warning when it is not full) or 'full' "
                             "(refuse to run without it)")
        self.field, self.timeout, self.memory_mb, self.workers = field, timeout, memory_mb, workers
        self.max_processes, self.file_size_mb, self.temp_mb = max_processes, file_size_mb, temp_mb
        self.unavailable: dict[str, str] = {}  # isolation mode -> why it cannot be used here
        self.isolation = "none"
        for mode in ISOLATION_MODES:
            why = probe_isolation(mode)
            if why is None:
                self.isolation = mode
                break
            self.unavailable[mode] = why
        if self.isolation != "full":
            why = self.unavailable["full"]
            if isolation == "full":
                raise ValueError(f"tests scorer: full isolation is not available here ({why}); "
                                 "run in a container or a VM, or use isolation=auto")
            log.warning("unit-test runs cannot be fully isolated here (%s): %s; the code they "
                        "run can read and write this user's files. Run untrusted code in a "
                        "container or VM.", why,
                        "the network is cut by a namespace" if self.isolation == "network"
                        else "only Python's socket functions are disabled in them")
        self.network_namespace = self.isolation != "none"

    def run(self, code: str, tests: str) -> Score:
        """One isolated run of ``code`` then ``tests``: 1.0 when it exits 0, else 0.0 and why."""
        result = run_isolated(_PRELUDE + "\n" + code + "\n\n" + tests + "\n",
                              isolation=self.isolation, timeout=self.timeout,
                              memory_mb=self.memory_mb, max_processes=self.max_processes,
                              file_size_mb=self.file_size_mb, temp_mb=self.temp_mb)
        if result.setup_error:  # the launcher could not set the run up: not the code's fault
            raise RuntimeError("could not start a unit-test run with its limits and "
                               f"{self.isolation} isolation: {result.setup_error}")
        if result.returncode is None:
            self.stats["timeouts"] += 1
            return Score(0.0, f"timeout after {self.timeout:g}s")
        if result.returncode == 0:
            self.stats["passed"] += 1
            return Score(1.0)
        self.stats["failed"] += 1
        last = _last_line(result.stderr_tail)
        if not last:
            sig = result.returncode - 128
            last = _SIGNALS.get(sig, f"exit status {result.returncode}")
        if len(last) > REASON_CHARS:
            last = last[:REASON_CHARS] + "..."
        return Score(0.0, f"tests failed: {last}")

    def score(self, groups: Sequence[Group]) -> list[list[Score]]:
        jobs = []
        for item, responses in groups:
            tests = item.meta.get(self.field)
            if not isinstance(tests, str):
                raise ValueError(f"prompt {item.index}: the tests scorer needs a {self.field!r} "
                                 "column with test code (a string) in every prompt row")
            jobs.extend((extract_code(text), tests) for text in responses)
        with ThreadPoolExecutor(self.workers) as pool:
            flat = list(pool.map(lambda job: self.run(*job), jobs))
        return per_group(flat, groups)

    def describe(self) -> dict:
        desc = {"scorer": self.name, "field": self.field, "timeout": self.timeout,
                "memory_mb": self.memory_mb, "max_processes": self.max_processes,
                "file_size_mb": self.file_size_mb, "isolation": self.isolation,
                **_WHAT[self.isolation]}
        desc["processes"] += f"; number of processes: {process_limit(self.isolation)}"
        if self.isolation == "full":
            desc["temp_mb"] = self.temp_mb
        else:
            desc["isolation_unavailable"] = dict(self.unavailable)
        return desc


@scorer_kind("verifier", args="`MODULE:FUNCTION`",
             summary="`FUNCTION(response, row)` returns bool (1/0), a number, or `(value, reason)`; "
                     "an exception fails the response with its message")
def _build_verifier(args: str, options: dict, device: str | None) -> Scorer:
    return FunctionVerifier(args)


@scorer_kind("tests", args="`FIELD` (default `tests`)",
             summary="runs the response's code (first fenced block, else the text) then the row's "
                     "`FIELD` test code with `python -I`, isolated ([below](#how-the-unit-test-"
                     "scorer-isolates-a-run)): exit 0 = 1, else 0 with the reason (the last stderr "
                     "line, 200 characters at most; timeouts included)",
             options={"timeout": "seconds per run (10)", "memory_mb": "memory limit (1024)",
                      "workers": "runs at a time (2)", "max_processes": "process limit (32)",
                      "file_size_mb": "largest file a run may write (16)",
                      "temp_mb": "its temporary folder's size (64)",
                      "isolation": "`auto` (the best this machine allows), or `full` to refuse to "
                                   "run without it"})
def _build_tests(args: str, options: dict, device: str | None) -> Scorer:
    return UnitTestVerifier(args or "tests", **options)
