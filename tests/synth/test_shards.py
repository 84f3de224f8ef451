"""Synth across workers: each worker samples its chunks into its own log, the last to finish (or
--merge) writes the output, the same bytes as one worker's; a killed worker resumes its share;
the merge refuses logs that do not fit."""

import json

import pytest

from prefalign.cli import main
from prefalign.synth import SynthConfig, run_synth
from prefalign.synth.shards import parse_shard
from synth_helpers import CannedGenerator, arithmetic_rows

VERIFIER = "verifier:synth_helpers:digit_share"
TABLE = [[f"{i}{j}" * (j + 1) for j in range(3)] for i in range(5)]


class Crashing(CannedGenerator):
    """Dies (as a killed worker would) on call number ``at``."""

    def __init__(self, table, at):
        super().__init__(table)
        self.at = at

    def generate(self, prompts, n, sampling, seed=0):
        if self.calls + 1 == self.at:
            raise KeyboardInterrupt("killed")
        return super().generate(prompts, n, sampling, seed)


def _cfg(prompts, out, **kw):
    return SynthConfig(**{"prompts": str(prompts), "output": str(out), "scorer": VERIFIER,
                          "n": 3, "chunk_size": 2, "generator": CannedGenerator(TABLE),
                          "progress": False, **kw})


def test_shards_are_read_and_checked():
    assert parse_shard("") is None and parse_shard("0/1") is None
    assert (parse_shard("2/3").index, parse_shard(" 2 / 3 ").count) == (2, 3)
    for bad in ("3/3", "1", "-1/2", "a/b"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_two_workers_write_what_one_writes(tmp_path, write_prompts, monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    prompts = write_prompts(arithmetic_rows(5))
    one = run_synth(_cfg(prompts, tmp_path / "one.jsonl"))
    out = tmp_path / "two.jsonl"
    first = run_synth(_cfg(prompts, out, shard="0/2"))  # chunks 0 and 2: prompts 0, 1, 4
    assert first.counts["merged"] is False and first.counts["prompts"] == 3
    assert not out.exists()
    second = run_synth(_cfg(prompts, out, shard="1/2"))  # chunk 1: prompts 2, 3; then merges
    assert out.read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert [r.chosen for r in second.records] == [r.chosen for r in one.records]
    manifest = json.loads((tmp_path / "two.manifest.json").read_text())
    assert manifest["workers"]["count"] == 2
    assert [s["prompts"] for s in manifest["workers"]["shares"]] == [3, 2]
    assert manifest["counts"]["records"] == one.counts["records"]
    # the merge is its own step, and idempotent
    before = out.read_bytes()
    merged = run_synth(_cfg(prompts, out, merge=True))
    assert out.read_bytes() == before and merged.counts["records"] == one.counts["records"]


def test_a_killed_worker_resumes_its_share(tmp_path, write_prompts, monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    prompts = write_prompts(arithmetic_rows(5))
    run_synth(_cfg(prompts, tmp_path / "one.jsonl"))
    out = tmp_path / "two.jsonl"
    with pytest.raises(KeyboardInterrupt):  # worker 0 dies in its second chunk
        run_synth(_cfg(prompts, out, shard="0/2", generator=Crashing(TABLE, at=2)))
    run_synth(_cfg(prompts, out, shard="1/2"))  # finished; worker 0 is not: nothing merged
    assert not out.exists()
    with pytest.raises(ValueError, match=r"worker 0 of 2 has 2 of its 3 prompts"):
        run_synth(_cfg(prompts, out, merge=True))
    again = CannedGenerator(TABLE)
    run_synth(_cfg(prompts, out, shard="0/2", generator=again))  # resumes, then merges
    assert again.calls == 1  # only the unfinished chunk
    assert out.read_bytes() == (tmp_path / "one.jsonl").read_bytes()


def test_the_merge_refuses_logs_that_do_not_fit(tmp_path, write_prompts, monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    prompts = write_prompts(arithmetic_rows(5))
    out = tmp_path / "o.jsonl"
    with pytest.raises(ValueError, match="no worker logs"):
        run_synth(_cfg(prompts, out, merge=True))
    run_synth(_cfg(prompts, out, shard="0/2"))
    with pytest.raises(ValueError, match=r"no log of worker\(s\) \[1\] of 2"):
        run_synth(_cfg(prompts, out, merge=True))
    run_synth(_cfg(prompts, out, shard="1/2", temperature=0.1))  # another setting: no merge
    assert not out.exists()
    with pytest.raises(ValueError, match=r"shard-1-of-2.progress.jsonl was written with other "
                                         r"settings .*sampling.temperature 0.1 -> 0.8"):
        run_synth(_cfg(prompts, out, merge=True))
    run_synth(_cfg(prompts, out, shard="0/3"))
    with pytest.raises(ValueError, match="worker logs for 2 and 3 workers"):
        run_synth(_cfg(prompts, out, merge=True))
    with pytest.raises(ValueError, match="not both"):
        run_synth(_cfg(prompts, out, merge=True, shard="0/2"))


def test_workers_of_a_launcher_through_the_cli_with_a_model(tmp_path, write_prompts,
                                                             tiny_model_dir, monkeypatch,
                                                             capsys):
    """Real sampling: two workers (RANK/WORLD_SIZE, as torchrun sets them) give one worker's
    samples, seed for seed."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    prompts = write_prompts(arithmetic_rows(5))
    common = ["synth", "--model", str(tiny_model_dir("llama")), "--prompts", str(prompts),
              "--scorer", VERIFIER, "--n", "3", "--max-new-tokens", "6", "--temperature", "1.0",
              "--chunk-size", "2", "--device", "cpu", "--no-progress"]
    assert main(common + ["--output", str(tmp_path / "one.jsonl")]) == 0
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert main(common + ["--output", str(tmp_path / "two.jsonl")]) == 0
    assert "worker 0/2: 3 prompts" in capsys.readouterr().out
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    one = [json.loads(x) for x in (tmp_path / "one.jsonl.progress.jsonl").read_text()
           .splitlines()][1:]
    two = [json.loads(x) for name in ("0", "1") for x in
           (tmp_path / f"two.jsonl.shard-{name}-of-2.progress.jsonl").read_text()
           .splitlines()[1:]]
    texts = lambda entries: {e["index"]: [c["text"] for c in e["completions"]]  # noqa: E731
                             for e in entries}
    assert texts(two) == texts(one)


def test_a_worker_that_finds_the_output_locked_waits_and_merges(tmp_path, write_prompts,
                                                                 monkeypatch):
    """Worker 0 finishes while worker 1 holds the output lock (it was checking, found worker 0
    unfinished): worker 0 waits for the lock and merges, instead of leaving no output."""
    import threading
    import time
    from pathlib import Path

    from prefalign.core.locks import exclusive_lock

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    prompts = write_prompts(arithmetic_rows(5))
    run_synth(_cfg(prompts, tmp_path / "one.jsonl"))
    out = tmp_path / "two.jsonl"
    run_synth(_cfg(prompts, out, shard="1/2"))
    held = threading.Event()

    def hold():
        with exclusive_lock(out.with_name(out.name + ".lock")):
            held.set()
            time.sleep(1.5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    result = run_synth(_cfg(prompts, out, shard="0/2"))
    holder.join()
    assert result.counts.get("merged") is not False
    assert out.read_bytes() == (tmp_path / "one.jsonl").read_bytes()
