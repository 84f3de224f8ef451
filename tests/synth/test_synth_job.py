"""run_synth: counts in the manifest, prompt reading, kill -9 and resume, refused mismatches."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from synth_helpers import CannedGenerator, Server, arithmetic_rows
from prefalign.data import DataError, load_records
from prefalign.synth import SynthConfig, read_prompts, run_synth
from prefalign.core.durable_log import DurableLog

VERIFIER = "verifier:prefalign.synth.checks:answer_closeness"


def test_manifest_counts_generated_scored_paired_and_dropped(tmp_path, write_prompts):
    prompts = write_prompts(arithmetic_rows(4, chat=False))  # answers 4, 7, 10, 13
    table = [["4", "5", "4", ""],           # identical + empty -> pair 4 vs 5
             ["x", "y", "z", "w"],          # no numbers: all 0 -> tie
             ["10", "11", "9", "100"],      # pair 10 vs 100
             ["13", "13", "13", "13"]]      # identical x3 -> too few responses
    out = tmp_path / "pairs.jsonl"
    result = run_synth(SynthConfig(prompts=str(prompts), output=str(out), scorer=VERIFIER, n=4,
                                   generator=CannedGenerator(table), chunk_size=3, progress=False))
    manifest = json.loads((tmp_path / "pairs.manifest.json").read_text())
    c = manifest["counts"]
    assert c["generated"] == 16 and c["empty"] == 1 and c["scored"] == 15 and c["records"] == 2
    assert c["dropped"] == {"identical_responses": 4, "empty_response": 1, "tie": 1,
                            "too_few_responses": 1}
    assert c["reasons"] == {"no number in the response": 4, "empty_response": 1}
    assert manifest["kind"] == "pairwise" and manifest["n"] == 4
    assert manifest["sampling"]["temperature"] == 0.8 and manifest["scorer"] == VERIFIER
    assert manifest["scorer_details_this_run"]["scorer"] == "verifier"
    records, _ = load_records(out)
    assert [(r.chosen, r.rejected) for r in records] == [("4", "5"), ("10", "100")]
    assert records[1].score_chosen == 1.0 and records[1].margin == pytest.approx(1 - 1 / 91)

    # a rerun with everything logged generates nothing and writes the same file
    gen = CannedGenerator(table)
    again = run_synth(SynthConfig(prompts=str(prompts), output=str(out), scorer=VERIFIER, n=4,
                                  generator=gen, chunk_size=3, progress=False))
    assert gen.calls == 0 and again.counts["resumed_prompts"] == 4
    # another pair strategy rebuilds the output from the log without sampling again
    ranked = run_synth(SynthConfig(prompts=str(prompts), output=str(tmp_path / "r.parquet"),
                                   scorer=VERIFIER, n=4, generator=gen, chunk_size=3,
                                   pairs="ranked", progress=False))
    assert gen.calls == 2 and len(ranked.records) == 2  # new output, new log


def test_a_log_from_other_settings_is_refused(tmp_path, write_prompts):
    prompts = write_prompts(arithmetic_rows(2, chat=False))
    table = [["1", "2"], ["3", "4"]]
    cfg = dict(prompts=str(prompts), output=str(tmp_path / "o.jsonl"), scorer=VERIFIER, n=2,
               generator=CannedGenerator(table), progress=False)
    run_synth(SynthConfig(**cfg))
    with pytest.raises(ValueError, match=r"other settings \(sampling.temperature 0.8 -> 0.1\)"):
        run_synth(SynthConfig(**cfg, temperature=0.1))


def test_prompt_reader_accepts_strings_and_chats_and_names_bad_rows(tmp_path, write_prompts):
    path = write_prompts([{"prompt": "hi", "answer": 1},
                          {"prompt": [{"role": "user", "content": "yo"}], "system": "s"}])
    items = read_prompts(path)
    assert items[0].prompt == "hi" and items[0].meta == {"answer": 1}
    assert items[1].system == "s" and items[1].index == 1
    bad = write_prompts([{"prompt": "ok"}, {"question": "where is the prompt"}], "bad.jsonl")
    with pytest.raises(DataError, match=r"bad.jsonl, line 2, field 'prompt': missing"):
        read_prompts(bad)
    bad = write_prompts([{"prompt": [{"role": "assistant", "content": "x"}]}], "bad2.jsonl")
    with pytest.raises(DataError, match="line 1, field 'prompt': the prompt ends with an assist"):
        read_prompts(bad)
    import datasets

    ds = datasets.Dataset.from_list([{"prompt": "a"}, {"prompt": "b"}])
    assert [p.prompt for p in read_prompts(ds)] == ["a", "b"]
    ds.to_parquet(str(tmp_path / "p.parquet"))
    assert [p.prompt for p in read_prompts(tmp_path / "p.parquet")] == ["a", "b"]


def test_synth_reads_the_prompt_files_eval_reads(tmp_path):
    """One reader: a .txt file (one prompt per non-blank line) and a JSONL of plain strings are
    prompts for synth as they are for eval, with the same numbering."""
    from prefalign.eval.policy import read_prompts as eval_prompts

    txt = tmp_path / "p.txt"
    txt.write_text("1+1=\n\n2+3=\n")
    assert [p.prompt for p in read_prompts(txt)] == eval_prompts(txt) == ["1+1=", "2+3="]
    strings = tmp_path / "s.jsonl"
    strings.write_text('"a"\n"b"\n')
    assert [(p.index, p.prompt) for p in read_prompts(strings)] == [(0, "a"), (1, "b")]
    assert eval_prompts(strings) == ["a", "b"]


def test_torn_last_line_is_discarded(tmp_path):
    log = DurableLog(tmp_path / "log.jsonl")
    log.append([{"header": 1}, {"index": 0}])
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"index": 1, "compl')
    again = DurableLog(tmp_path / "log.jsonl")
    assert again.entries == [{"header": 1}, {"index": 0}] and again.discarded == 1
    assert (tmp_path / "log.jsonl").read_text().endswith('{"index": 0}\n')


def _cli(model, prompts, out):
    return [sys.executable, "-m", "prefalign.cli", "synth", "--model", str(model),
            "--prompts", str(prompts), "--output", str(out), "--scorer", VERIFIER, "--n", "3",
            "--chunk-size", "1", "--batch-size", "3", "--max-new-tokens", "8",
            "--temperature", "1.0", "--seed", "11", "--no-progress"]


def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path, write_prompts,
                                                                  tiny_model_dir):
    model = tiny_model_dir("llama")
    prompts = write_prompts(arithmetic_rows(8))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = tmp_path / "killed.jsonl"
    log = tmp_path / "killed.jsonl.progress.jsonl"
    proc = subprocess.Popen(_cli(model, prompts, out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if log.exists() and log.read_text().count("\n") >= 2:  # header + first chunk, durable
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    lines_at_kill = log.read_text().count("\n") - 1
    assert not out.exists() and 1 <= lines_at_kill < 8, "killed mid-run"
    with open(log, "a") as f:  # and a torn write on top, as a crash mid-append leaves
        f.write('{"index": 7, "completions": [{"te')

    rerun = subprocess.run(_cli(model, prompts, out), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resumed {lines_at_kill}" in rerun.stdout

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from prefalign.cli import main

        assert main(_cli(model, prompts, tmp_path / "clean.jsonl")[3:]) == 0
    finally:
        torch.set_num_threads(threads)
    assert out.read_bytes() == (tmp_path / "clean.jsonl").read_bytes()
    assert log.read_text().count("\n") == 9  # header + 8 prompts, none twice
    indices = [json.loads(x)["index"] for x in log.read_text().splitlines()[1:]]
    assert sorted(indices) == list(range(8))
    manifest = json.loads((tmp_path / "killed.manifest.json").read_text())
    assert manifest["counts"]["torn_lines_discarded"] == 1
    assert manifest["counts"]["generated"] == 24
    assert manifest["counts"]["resumed_prompts"] == lines_at_kill


def test_openai_backend_end_to_end(tmp_path, write_prompts):
    prompts = write_prompts(arithmetic_rows(3))
    with Server(fail_first=1) as server:
        result = run_synth(SynthConfig(
            model="served", backend="openai", base_url=server.url, prompts=str(prompts),
            output=str(tmp_path / "o.jsonl"), scorer=VERIFIER, n=2, progress=False))
    assert result.counts["generated"] == 6 and result.counts["http_retries"] == 1
    manifest = json.loads(result.manifest.read_text())
    assert manifest["backend"]["base_url"] == server.url


def test_manifest_keeps_the_most_common_failure_reasons(tmp_path, write_prompts):
    from prefalign.synth.job import MAX_REASONS

    rows = arithmetic_rows(30, chat=False)
    prompts = write_prompts(rows)
    # every prompt gets a distinct wrong answer (30 distinct reasons) plus one "no number"
    table = [[str(r["answer"] + 1000 + i), "none", str(r["answer"])] for i, r in enumerate(rows)]
    run_synth(SynthConfig(prompts=str(prompts), output=str(tmp_path / "p.jsonl"),
                          scorer="verifier:prefalign.synth.checks:exact_answer", n=3,
                          generator=CannedGenerator(table), progress=False))
    c = json.loads((tmp_path / "p.manifest.json").read_text())["counts"]
    assert len(c["reasons"]) == MAX_REASONS + 1
    assert c["reasons"]["no number in the response"] == 30
    assert sum(c["reasons"].values()) == 60  # nothing lost: the rest are summed
    assert c["reasons"]["(other reasons)"] == 30 - (MAX_REASONS - 1)


def test_a_second_job_on_the_same_output_is_refused_naming_the_first(tmp_path, write_prompts):
    """Two jobs on one output would both do all the work: the second is refused at once, with
    the first one's PID, and the first finishes as if alone."""
    import threading

    from prefalign.core.locks import LockHeldError

    prompts = write_prompts(arithmetic_rows(2, chat=False))
    started, release = threading.Event(), threading.Event()

    class Slow(CannedGenerator):
        def generate(self, prompts, n, sampling, seed=0):
            started.set()
            assert release.wait(30)
            return super().generate(prompts, n, sampling, seed)

    first_gen = Slow([["4", "5"], ["7", "8"]])
    out = tmp_path / "pairs.jsonl"
    cfg = dict(prompts=str(prompts), output=str(out), scorer=VERIFIER, n=2, progress=False)
    results = []
    first = threading.Thread(target=lambda: results.append(
        run_synth(SynthConfig(**cfg, generator=first_gen))))
    first.start()
    try:
        assert started.wait(30)
        second_gen = CannedGenerator([["4", "5"], ["7", "8"]])
        held = rf"synth output {out} is in use .*PID {os.getpid()}"
        with pytest.raises(LockHeldError, match=held):
            run_synth(SynthConfig(**cfg, generator=second_gen))
        assert second_gen.calls == 0
    finally:
        release.set()
        first.join(30)
    assert results and results[0].counts["records"] == 2 and first_gen.calls == 1
    # the lock goes with the job: a later run on the output resumes (nothing left to do)
    again = CannedGenerator([["4", "5"], ["7", "8"]])
    assert run_synth(SynthConfig(**cfg, generator=again)).counts["records"] == 2
    assert again.calls == 0


@pytest.mark.parametrize("name, problem", [("folder", "is a folder"),
                                           ("pairs.txt", "file type '.txt'"),
                                           ("pairs", "a name without a file type")])
def test_an_output_synth_cannot_write_is_refused_before_any_work(tmp_path, write_prompts, name,
                                                                  problem):
    prompts = write_prompts(arithmetic_rows(2, chat=False))
    (tmp_path / "folder").mkdir()
    gen = CannedGenerator([["4", "5"], ["7", "8"]])
    with pytest.raises(ValueError, match=problem):
        run_synth(SynthConfig(prompts=str(prompts), output=str(tmp_path / name), scorer=VERIFIER,
                              n=2, generator=gen, progress=False))
    assert gen.calls == 0
    assert not list(tmp_path.glob("*.progress.jsonl")) and not list(tmp_path.glob("folder/*"))


def _main(argv, capsys, monkeypatch):
    from prefalign.cli import main

    monkeypatch.delenv("PREFALIGN_DEBUG", raising=False)
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.splitlines()


def test_synth_cli_errors_are_one_line(tmp_path, write_prompts, capsys, monkeypatch):
    from synth_helpers import ScriptedServer

    prompts = write_prompts(arithmetic_rows(1, chat=False))
    base = ["synth", "--prompts", str(prompts), "--scorer", VERIFIER, "--n", "2",
            "--no-progress"]
    missing = tmp_path / "no-such-model"
    code, err = _main(base + ["--model", str(missing), "--output", str(tmp_path / "o.jsonl")],
                     capsys, monkeypatch)
    assert code == 2 and err[0] == (f"prefalign synth: error: --model {missing}: no such folder; "
                                    "the hf back end loads a model folder (written by "
                                    "save_pretrained)")
    code, err = _main(base + ["--model", str(missing), "--output", str(tmp_path)], capsys,
                     monkeypatch)
    assert code == 2 and err[0].startswith(f"prefalign synth: error: --output {tmp_path} is a "
                                           "folder")
    answer = (401, {"Content-Type": "application/json"},
              b'{"error": {\n "message": "Incorrect API key"}}')
    with ScriptedServer(lambda *a: answer) as server:
        code, err = _main(base + ["--model", "served", "--backend", "openai", "--base-url",
                                 server.url, "--output", str(tmp_path / "h.jsonl")],
                         capsys, monkeypatch)
    assert code == 2 and len(err) == 2, err
    assert err[0].startswith(f"prefalign synth: error: {server.url}/chat/completions: HTTP 401 ")
    assert "Incorrect API key" in err[0]


def test_a_prompt_too_long_for_the_model_is_refused_before_sampling(tmp_path, write_prompts,
                                                                    tiny_model_dir):
    """A prompt whose tokens plus --max-new-tokens pass the model's positions (here a model of
    64 positions) stops synth naming the prompt, before anything is sampled or written."""
    from prefalign.demo.tiny_models import build_tiny_model

    model = build_tiny_model(tmp_path / "short", max_positions=64)
    prompts = write_prompts([{"prompt": "1+1="}, {"prompt": "9" * 60}])
    with pytest.raises(ValueError, match=r"prompts.jsonl: prompt 2 is \d+ tokens; with "
                                         r"--max-new-tokens 8 it passes the model's 64 positions"):
        run_synth(SynthConfig(model=str(model), prompts=str(prompts), scorer=VERIFIER, n=2,
                              max_new_tokens=8, output=str(tmp_path / "o.jsonl"), progress=False))
    assert not (tmp_path / "o.jsonl").exists()
