"""Programmatic verifiers: a Python function, or unit tests run in a subprocess.

``verifier:MODULE:FUNCTION`` imports ``FUNCTION(response, example)`` where ``response`` is the
generated text and ``example`` the prompt row (``prompt``, ``system`` and every other column, e.g.
``answer``). It returns a bool (pass = 1.0, fail = 0.0), a number, or ``(value, reason)``. An
exception counts as a failure scored 0.0, with the exception as its reason.

``tests:FIELD`` runs the response's code (its first fenced code block, or the whole text)
followed by the row's ``FIELD`` column (asserts, a test script) in ``python -I`` in a fresh
temporary folder, with a CPU-time and memory limit, an empty environment, no stdin, and a
wall-clock ``timeout``. The network is cut at the OS level where Linux lets an unprivileged
process make its own network namespace (with no interfaces up, every connection fails,
subprocesses' too); elsewhere only Python's ``socket`` functions are disabled inside the
interpreter, and the scorer says so (``describe()["network"]`` and a warning). Exit status 0
passes (1.0); anything else, timeouts included, fails (0.0) with the reason. This keeps honest
mistakes contained; it is not a security sandbox for hostile code (use a container for that).
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import logging
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

from ..types import Score
from .base import Group, Scorer


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


_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000
log = logging.getLogger(__name__)


def _leave_network() -> None:
    """Move this (forked, not yet exec'd) process into a new network namespace, whose only
    interface, loopback, is down. A new user namespace alongside lets an unprivileged user do
    it; root may do it without one. Raises OSError where neither is allowed."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0 and libc.unshare(_CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@functools.cache
def network_namespaces_available() -> bool:
    """Whether unit-test runs can be cut off the network by a namespace here (asked once)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        subprocess.run([sys.executable, "-c", "pass"], preexec_fn=_leave_network, check=True,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def _limits(cpu_seconds: int, memory_bytes: int, isolate_network: bool):
    def apply():  # runs in the child between fork and exec
        import resource

        if isolate_network:
            _leave_network()
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
    return apply


class UnitTestVerifier(Scorer):
    name = "tests"

    def __init__(self, field: str = "tests", *, timeout: float = 10.0, memory_mb: int = 1024,
                 workers: int = 2):
        super().__init__()
        self.field, self.timeout, self.memory_mb, self.workers = field, timeout, memory_mb, workers
        self.network_namespace = network_namespaces_available()
        if not self.network_namespace:
            log.warning("unit-test runs cannot get their own network namespace here; only "
                        "Python's socket functions are disabled in them")

    def _run(self, code: str, tests: str) -> Score:
        with tempfile.TemporaryDirectory(prefix="prefalign-tests-") as tmp:
            path = os.path.join(tmp, "run_tests.py")
            with open(path, "w", encoding="utf-8") as f:
                f.write(_PRELUDE + "\n" + code + "\n\n" + tests + "\n")
            try:
                proc = subprocess.run(
                    [sys.executable, "-I", path], cwd=tmp, stdin=subprocess.DEVNULL,
                    capture_output=True, text=True, timeout=self.timeout,
                    env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
                    preexec_fn=_limits(int(self.timeout) + 1, self.memory_mb << 20,
                                       self.network_namespace))
            except subprocess.TimeoutExpired:
                self.stats["timeouts"] += 1
                return Score(0.0, f"timeout after {self.timeout:g}s")
            except subprocess.SubprocessError as e:  # the child's setup (limits, namespace)
                raise RuntimeError(f"could not start a unit-test run with its limits and "
                                   f"network isolation: {e}") from e
        if proc.returncode == 0:
            self.stats["passed"] += 1
            return Score(1.0)
        self.stats["failed"] += 1
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        return Score(0.0, f"tests failed: {last[:300]}")

    def score(self, groups: Sequence[Group]) -> list[list[Score]]:
        jobs = []
        for item, responses in groups:
            tests = item.meta.get(self.field)
            if not isinstance(tests, str):
                raise ValueError(f"prompt {item.index}: the tests scorer needs a {self.field!r} "
                                 "column with test code (a string) in every prompt row")
            jobs.extend((extract_code(text), tests) for text in responses)
        with ThreadPoolExecutor(self.workers) as pool:
            flat = list(pool.map(lambda job: self._run(*job), jobs))
        out, pos = [], 0
        for _, responses in groups:
            out.append(flat[pos:pos + len(responses)])
            pos += len(responses)
        return out

    def describe(self) -> dict:
        return {"scorer": self.name, "field": self.field, "timeout": self.timeout,
                "memory_mb": self.memory_mb,
                "network": "namespace" if self.network_namespace else "python-sockets-disabled"}
