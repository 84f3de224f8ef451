"""The output lock: one writer per output folder, the second refused with the holder's PID."""

import os
import subprocess
import sys
import textwrap

import pytest

from prefalign.core.locks import LockHeldError, exclusive_lock


def test_second_lock_is_refused_naming_the_holder(tmp_path):
    lock = tmp_path / "out" / ".prefalign.lock"
    with exclusive_lock(lock, what="training output out"):
        assert lock.read_text().strip() == str(os.getpid())
        with pytest.raises(LockHeldError, match=rf"training output out is in use .*PID {os.getpid()}") as e:
            with exclusive_lock(lock, what="training output out"):
                pass
        assert isinstance(e.value, ValueError) and e.value.holder_pid == os.getpid()
    with exclusive_lock(lock):  # released on exit
        pass


def test_lock_of_another_process_names_its_pid_and_dies_with_it(tmp_path):
    lock = tmp_path / ".prefalign.lock"
    code = textwrap.dedent(f"""
        import sys, time
        from prefalign.core.locks import exclusive_lock
        with exclusive_lock({str(lock)!r}):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeldError, match=rf"PID {child.pid}\b"):
            with exclusive_lock(lock):
                pass
    finally:
        child.kill()
        child.wait()
    with exclusive_lock(lock):  # a killed holder leaves no stale lock
        pass
