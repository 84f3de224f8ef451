"""The unit-test scorer's isolation, tried with code that misbehaves on purpose: processes left
running after a timeout, a secret read from outside the run's folder, files written and deleted
outside it, a fork bomb, a disk filled with files. Where this machine cannot isolate a run
fully, the tests that need it skip, after checking that the scorer says so."""

import json
import logging
import os
import signal
import textwrap
import time
import uuid

import pytest

from prefalign.scoring import verifier
from prefalign.scoring.verifier import UnitTestVerifier
from prefalign.generation.types import PromptItem

ITEM = PromptItem(0, "write add", meta={"tests": "assert add(2, 3) == 5"})


def run(code, **options):
    scorer = UnitTestVerifier("tests", **options)
    [[score]] = scorer.score([(ITEM, [code])])
    return scorer, score


def needs_full_isolation(scorer):
    """Skip where the scorer says runs cannot be fully isolated here (naming what is not and
    why); a scorer that claims nothing is held to the full isolation's behaviour."""
    desc = scorer.describe()
    if desc.get("isolation", "full") == "full":
        return
    assert desc.get("filesystem", "").startswith("NOT isolated"), desc
    assert "full" in desc.get("isolation_unavailable", {}), desc
    pytest.skip(f"no full isolation here: {desc['isolation_unavailable']['full']}")


def processes_with(marker):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def wait_until_gone(marker, seconds=3.0):
    deadline = time.monotonic() + seconds
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return processes_with(marker)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to look for processes")
@pytest.mark.parametrize("ending", ["timeout", "exit"])
@pytest.mark.parametrize("mode", [None, "network", "none"])
def test_no_process_outlives_its_run(ending, mode):
    """A grandchild in a new session (so outside the run's process group), its stdio detached,
    is gone once the run has timed out, or once the test process exited on its own: with the
    best isolation here (None), and in the fallbacks too."""
    if mode is not None and verifier.probe_isolation(mode) is not None:
        pytest.skip(f"no {mode} isolation here: {verifier.probe_isolation(mode)}")
    marker = f"prefalign-straggler-{uuid.uuid4().hex}"
    code = textwrap.dedent(f"""\
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "{marker}"],
                         start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        {"time.sleep(60)" if ending == "timeout" else "pass"}
        def add(a, b):
            return a + b""")
    try:
        scorer = UnitTestVerifier("tests", timeout=3.0)
        if mode is not None:
            scorer.isolation = mode
        [[score]] = scorer.score([(ITEM, [code])])
        assert score.value == (0.0 if ending == "timeout" else 1.0), score
        assert wait_until_gone(marker) == [], "a process of the run is still running"
    finally:
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)


def test_a_secret_outside_the_run_cannot_be_read_or_leak_into_the_reason(tmp_path):
    home = tmp_path / "home" / ".ssh"
    home.mkdir(parents=True)
    secret = f"FAKE-KEY-{uuid.uuid4().hex}"
    (home / "id_fake").write_text(secret)
    code = textwrap.dedent(f"""\
        import sys
        data = open({str(home / "id_fake")!r}).read()
        print("stolen:", data)
        print("stolen:", data, file=sys.stderr)
        raise AssertionError(data)""")
    scorer, score = run(code)
    needs_full_isolation(scorer)
    assert score.value == 0.0
    assert secret not in score.reason
    assert "FileNotFoundError" in score.reason, score.reason


def test_files_outside_the_run_can_be_neither_written_nor_deleted(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    written = tmp_path / "written.txt"
    folder = tmp_path / "empty-folder"
    folder.mkdir()
    code = textwrap.dedent(f"""\
        import os
        for attempt in (lambda: open({str(written)!r}, "w").write("x"),
                        lambda: os.remove({str(victim)!r}),
                        lambda: os.rmdir({str(folder)!r})):
            try:
                attempt()
            except OSError:
                pass
        open("inside.txt", "w").write("the run's own folder is writable")
        assert open("inside.txt").read().startswith("the run")
        def add(a, b):
            return a + b""")
    scorer, score = run(code)
    needs_full_isolation(scorer)
    assert score.value == 1.0, score.reason
    assert victim.read_text() == "keep me"
    assert not written.exists() and folder.is_dir()


def test_a_fork_bomb_is_stopped_at_the_process_limit():
    code = textwrap.dedent("""\
        import os, time
        n = 0
        for _ in range(200):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(3)
                os._exit(0)
            n += 1
        raise SystemExit(f"forked {n}")""")
    scorer, score = run(code, timeout=20.0)  # at most 32 processes by default
    needs_full_isolation(scorer)
    assert score.reason.startswith("tests failed: forked "), score.reason
    assert int(score.reason.split()[-1]) <= 32


def test_the_disk_a_run_can_fill_is_bounded():
    """One file past the file-size limit fails, and so does filling the disk with many files
    below it: the run's /tmp is a tmpfs of ``temp_mb`` (64 MiB by default)."""
    _, big = run("open('big', 'wb').write(b'x' * (32 << 20))\n")
    assert big.value == 0.0
    code = textwrap.dedent("""\
        n = 0
        try:
            for i in range(50):
                with open(f"part-{i}", "wb") as f:
                    f.write(b"x" * (4 << 20))
                n += 4
        except OSError:
            pass
        raise SystemExit(f"wrote {n}")""")
    scorer, score = run(code)
    needs_full_isolation(scorer)
    assert score.reason.startswith("tests failed: wrote "), score.reason
    assert int(score.reason.split()[-1]) <= 64


def test_without_full_isolation_the_scorer_warns_and_says_so(monkeypatch, caplog):
    """Simulated: the full mode's probe fails. The scorer falls back (warning), its description
    (what the manifest records) names what is not isolated and why; isolation='full' refuses."""
    real = verifier.probe_isolation

    def probe(mode):
        return "user namespaces are disabled (simulated)" if mode == "full" else real(mode)

    monkeypatch.setattr(verifier, "probe_isolation", probe)
    with caplog.at_level(logging.WARNING, logger=verifier.__name__):
        scorer = UnitTestVerifier("tests")
    assert "cannot be fully isolated" in caplog.text and "(simulated)" in caplog.text
    desc = scorer.describe()
    assert desc["isolation"] in ("network", "none")
    assert desc["filesystem"].startswith("NOT isolated")
    assert desc["isolation_unavailable"]["full"] == "user namespaces are disabled (simulated)"
    [[score]] = scorer.score([(ITEM, ["def add(a, b):\n    return a + b"])])
    assert score.value == 1.0, score.reason
    with pytest.raises(ValueError, match="full isolation is not available here"):
        UnitTestVerifier("tests", isolation="full")


def test_the_manifest_records_the_isolation(tmp_path):
    from prefalign.synth import SynthConfig, run_synth
    from prefalign.generation.types import Completion

    class Canned:
        name = "canned"

        def generate(self, prompts, n, sampling, seed=0):
            texts = ["def add(a, b):\n    return a + b", "def add(a, b):\n    return a - b"]
            return [[Completion(texts[j % 2], seed=j) for j in range(n)] for _ in prompts]

        def describe(self):
            return {"backend": "canned"}

    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "write add", "tests": "assert add(2, 3) == 5"}) + "\n")
    scorer = UnitTestVerifier("tests")
    result = run_synth(SynthConfig(prompts=str(prompts), output=str(tmp_path / "o.jsonl"), n=2,
                                   generator=Canned(), scorer_obj=scorer, progress=False))
    details = json.loads(result.manifest.read_text())["scorer_details_this_run"]
    assert details["isolation"] == scorer.isolation
    assert details["network"] and details["filesystem"] and details["processes"]
    if scorer.isolation != "full":
        assert details["isolation_unavailable"]["full"]
    assert result.counts["records"] == 1
