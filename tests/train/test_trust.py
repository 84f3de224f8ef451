"""Runs you can trust: OUTPUT resumes only its own run, checkpoints hold no pickles, NaN stops
the run, settings are checked (and coerced) before any model loads, one writer per OUTPUT,
torn metrics lines, missing models and unwritable outputs, rows within the model's positions."""

import errno
import json
import logging
import sys

import pytest
import torch

from prefalign.train import TrainConfig, Trainer, train


def config(model, data, out, **kw):
    base = dict(model=str(model), data=str(data), output=str(out), cache_dir=str(out.parent / "cache"),
                batch_size=2, grad_accum=2, lr=1e-3, max_steps=5, progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def interrupted_run(monkeypatch, cfg, at=3):
    """Train ``cfg`` until step ``at`` starts, then raise KeyboardInterrupt (as a kill would)."""
    original = Trainer._run_step

    def crash(self):
        if self.step == at:
            raise KeyboardInterrupt("simulated interruption")
        return original(self)

    monkeypatch.setattr(Trainer, "_run_step", crash)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(Trainer, "_run_step", original)


# ---- 1. whose run is in OUTPUT ------------------------------------------------------------------
def test_another_runs_checkpoint_is_refused_naming_what_differs(tiny_model_dir, pair_file, tmp_path,
                                                               monkeypatch):
    model, out = tiny_model_dir("llama"), tmp_path / "run"
    interrupted_run(monkeypatch, config(model, pair_file, out, save_steps=2))
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match=r"holds another run \(lr 0.001 -> 0.01\).*new --output.*--overwrite"):
        train(config(model, pair_file, out, save_steps=2, lr=1e-2))
    assert (out / "metrics.jsonl").read_text() == before
    assert json.loads((out / "config.json").read_text())["lr"] == 1e-3  # still the run's own
    # a setting that does not change the result (checkpoint frequency) resumes the same run
    train(config(model, pair_file, out, save_steps=1))
    assert [m["step"] for m in metrics(out)] == [1, 2, 3, 4, 5]


def test_changed_data_contents_and_objective_are_refused(tiny_model_dir, pair_file, tmp_path,
                                                         monkeypatch):
    model, out = tiny_model_dir("llama"), tmp_path / "run"
    interrupted_run(monkeypatch, config(model, pair_file, out, save_steps=2))
    with pytest.raises(ValueError, match=r"objective 'sigmoid' -> 'ipo'"):
        train(config(model, pair_file, out, save_steps=2, objective="ipo"))
    pair_file.write_text(pair_file.read_text().replace('"chosen": "', '"chosen": "0', 1))
    with pytest.raises(ValueError, match=rf"data: {pair_file} has other contents"):
        train(config(model, pair_file, out, save_steps=2))


def test_a_finished_run_rerun_is_a_no_op(tiny_model_dir, pair_file, tmp_path, capsys):
    from prefalign.cli import main

    model, out = tiny_model_dir("llama"), tmp_path / "run"
    first = train(config(model, pair_file, out, max_steps=3, save_steps=1))
    assert first.steps == 3 and not first.already_done
    stamp = (out / "model" / "model.safetensors").stat().st_mtime_ns
    lines = (out / "metrics.jsonl").read_text()
    again = train(config(model, pair_file, out, max_steps=3, save_steps=1))
    assert again.already_done and again.steps == 3
    assert again.final_metrics["step"] == 3
    assert (out / "metrics.jsonl").read_text() == lines
    assert (out / "model" / "model.safetensors").stat().st_mtime_ns == stamp
    args = ["train", "--model", str(model), "--data", str(pair_file), "--output", str(out),
            "--cache-dir", str(tmp_path / "cache"), "--batch-size", "2", "--grad-accum", "2",
            "--lr", "1e-3", "--max-steps", "3", "--seed", "3", "--no-progress"]
    assert main(args) == 0
    assert "already holds this run, finished (3 steps): nothing to do" in capsys.readouterr().out
    # --overwrite trains it again from the start
    assert main(args + ["--overwrite"]) == 0
    assert [m["step"] for m in metrics(out)] == [1, 2, 3]
    assert not (out / "checkpoints").exists()


def test_files_no_run_record_vouches_for_are_refused(tiny_model_dir, pair_file, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints" / "step-2").mkdir(parents=True)
    (out / "checkpoints" / "step-2" / "trainer_state.json").write_text('{"step": 2}')
    with pytest.raises(ValueError, match="holds training files .*no run.json"):
        train(config(tiny_model_dir("llama"), pair_file, out))


# ---- 2. no pickles ------------------------------------------------------------------------------
class _WritesFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({str(self.path)!r}, 'w').write('ran')",))


def test_a_planted_pickle_in_a_checkpoint_does_not_run(tiny_model_dir, pair_file, tmp_path,
                                                       monkeypatch):
    model = tiny_model_dir("qwen2")
    train(config(model, pair_file, tmp_path / "whole", save_steps=2))
    expected = [m["loss"] for m in metrics(tmp_path / "whole")]

    out = tmp_path / "cut"
    interrupted_run(monkeypatch, config(model, pair_file, out, save_steps=2))
    ckpt = out / "checkpoints" / "step-2"
    assert {p.suffix for p in ckpt.iterdir()} <= {".json", ".safetensors"}, sorted(ckpt.iterdir())
    marker = tmp_path / "pickle-ran"
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl"):
        torch.save(_WritesFile(marker), ckpt / name)  # what accelerate's load_state unpickles
    train(config(model, pair_file, out, save_steps=2))
    assert not marker.exists(), "a pickle in the checkpoint was executed on resume"
    assert [m["loss"] for m in metrics(out)] == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_a_checkpoint_of_the_old_pickled_format_is_not_loaded(tiny_model_dir, pair_file, tmp_path,
                                                              monkeypatch):
    model, out = tiny_model_dir("llama"), tmp_path / "run"
    interrupted_run(monkeypatch, config(model, pair_file, out, save_steps=2))
    state = out / "checkpoints" / "step-2" / "trainer_state.json"
    state.write_text(json.dumps({"step": 2, "running": {}}))  # format 1 (accelerate's files)
    with pytest.raises(ValueError, match="another format.*no pickles.*--overwrite"):
        train(config(model, pair_file, out, save_steps=2))


# ---- 3. NaN stops the run ---------------------------------------------------------------------------
def test_a_non_finite_loss_stops_the_run_naming_the_step(tiny_model_dir, pair_file, tmp_path,
                                                         monkeypatch):
    import prefalign.train.forward_step as forward_step

    real = forward_step.compute_step_loss

    def nan_at_step_three(*args, **kwargs):
        out = real(*args, **kwargs)
        if Trainer._current_step == 3:
            out.losses = out.losses * float("nan")
        return out

    original_step = Trainer._run_step

    def track(self):
        Trainer._current_step = self.step + 1
        return original_step(self)

    monkeypatch.setattr(Trainer, "_current_step", 0, raising=False)
    monkeypatch.setattr(Trainer, "_run_step", track)
    monkeypatch.setattr(forward_step, "compute_step_loss", nan_at_step_three)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"step 3: the loss is not finite.*checkpoints/step-2.*kept"):
        train(config(tiny_model_dir("llama"), pair_file, out, save_steps=2))
    assert [m["step"] for m in metrics(out)] == [1, 2]
    assert not (out / "model").exists()
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-2"]
    saved = __import__("safetensors.torch", fromlist=["load_file"]).load_file(
        str(out / "checkpoints" / "step-2" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in saved.values())


def test_a_huge_learning_rate_stops_the_run_and_saves_no_model(tiny_model_dir, pair_file, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"step 2: the loss is not finite.*no model was saved.*"
                                         r"no checkpoint was written.*learning rate"):
        train(config(tiny_model_dir("llama"), pair_file, out, lr=1e30, scheduler="constant"))
    assert not (out / "model").exists()
    assert [m["step"] for m in metrics(out)] == [1]


def test_an_update_that_makes_the_weights_nan_is_not_kept(tiny_model_dir, pair_file, tmp_path,
                                                          monkeypatch):
    def poisoned(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.data.fill_(float("nan"))

    monkeypatch.setattr(torch.optim.AdamW, "step", poisoned)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"step 1: the update made the weights NaN or infinite"):
        train(config(tiny_model_dir("llama"), pair_file, out))
    assert not (out / "model").exists()


# ---- 4, 5. settings: meaning, types, YAML -------------------------------------------------------------
@pytest.mark.parametrize("setting,match", [
    (dict(lr=0.0), r"lr must be a finite number > 0, got 0.0"),
    (dict(lr=float("inf")), r"lr must be a finite number > 0"),
    (dict(batch_size=0), r"batch_size must be >= 1"),
    (dict(batch_size=-2), r"batch_size must be >= 1"),
    (dict(grad_accum=0), r"grad_accum must be >= 1"),
    (dict(epochs=0.0), r"epochs must be a finite number > 0"),
    (dict(max_steps=0), r"max_steps must be >= 1, or -1 to use epochs"),
    (dict(max_steps=-2), r"max_steps must be >= 1, or -1 to use epochs"),
    (dict(objective_args={"beta": float("nan")}), r"'sigmoid'.*beta=nan is not a finite number"),
    (dict(objective_args={"beta": 0.0}), r"'sigmoid'.*beta=0 is out of range: it must be > 0"),
    (dict(objective="robust", objective_args={"label_smoothing": 0.5}),
     r"'robust'.*label_smoothing=0.5 is out of range: it must be in \[0, 0.5\)"),
    (dict(objective_args={"beta": "abc"}), r"beta must be a number > 0, got 'abc'"),
])
def test_bad_settings_are_refused_before_any_model_loads(pair_file, tmp_path, setting, match):
    cfg = TrainConfig(model=str(tmp_path / "not-a-model"), data=str(pair_file),
                      output=str(tmp_path / "r"), progress=False, **setting)
    with pytest.raises(ValueError, match=match):
        train(cfg)
    assert not (tmp_path / "r").exists()


def test_max_steps_minus_one_means_use_epochs(tiny_model_dir, pair_file, tmp_path):
    result = train(config(tiny_model_dir("llama"), pair_file, tmp_path / "r", max_steps=-1,
                          epochs=1.0, batch_size=4, grad_accum=1))
    assert result.steps == 4  # 16 pairs / 4


def test_yaml_numbers_are_numbers_and_errors_name_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-5\nbatch_size: '4'\nobjective_args:\n  beta: 1e-3\nmax_length: null\n")
    cfg = TrainConfig.from_sources(str(path))
    assert cfg.lr == 1e-5 and isinstance(cfg.lr, float) and cfg.batch_size == 4
    assert cfg.objective_args == {"beta": 1e-3}
    cases = {
        "lr: fast\n": r"c.yaml, line 1: lr must be a number, got 'fast'",
        "seed: 1\nlr: 0\n": r"c.yaml, line 2: lr must be a finite number > 0",
        "objective_args:\n  beta: -1\n": r"c.yaml, line 2: objective 'sigmoid'.*beta=-1",
        "lr: [1e-5\n": r"c.yaml, line 2: .*flow sequence that starts on line 1",
        "lr: !!python/object/apply:os.system ['true']\n": r"c.yaml, line 1: .*tags are not allowed",
        "lr: 1\nlr: 2\n": r"c.yaml, line 2: option 'lr' is given twice \(first on line 1\)",
        "max_steps: 2.5\n": r"c.yaml, line 1: max_steps must be a whole number, got 2.5",
    }
    for text, match in cases.items():
        path.write_text(text)
        with pytest.raises(ValueError, match=match):
            TrainConfig.from_sources(str(path))


def test_cli_set_reads_numbers_by_the_hyperparameters_type(tiny_model_dir, pair_file, tmp_path,
                                                           capsys):
    from prefalign.cli import main

    out = tmp_path / "r"
    args = ["train", "--model", str(tiny_model_dir("llama")), "--data", str(pair_file),
            "--output", str(out), "--max-steps", "1", "--no-progress", "--cache-dir",
            str(tmp_path / "cache")]
    assert main(args + ["--set", "beta=1e-3", "--set", "use_weighting=false"]) == 0
    assert json.loads((out / "config.json").read_text())["objective_args"] == {
        "beta": 1e-3, "use_weighting": False}
    assert main(args + ["--set", "beta=[1", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "beta must be a number > 0, got '[1'" in err and "Traceback" not in err
    path = tmp_path / "bad.yaml"
    path.write_text("lr: !!python/name:os.system\n")
    assert main(args + ["--config", str(path)]) == 2
    assert f"{path}, line 1:" in capsys.readouterr().err


# ---- 6. torn metrics line ----------------------------------------------------------------------------------
def test_a_torn_last_metrics_line_is_cut_with_a_warning(tiny_model_dir, pair_file, tmp_path,
                                                        monkeypatch, caplog):
    model, out = tiny_model_dir("llama"), tmp_path / "run"
    train(config(model, pair_file, tmp_path / "whole", save_steps=2))
    interrupted_run(monkeypatch, config(model, pair_file, out, save_steps=2))
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "loss": 0.69')  # a full disk cut the line
    with caplog.at_level(logging.WARNING):
        train(config(model, pair_file, out, save_steps=2))
    assert any(str(out / "metrics.jsonl") in r.getMessage() and "torn last line" in r.getMessage()
               for r in caplog.records)
    assert [m["loss"] for m in metrics(out)] == pytest.approx(
        [m["loss"] for m in metrics(tmp_path / "whole")], rel=1e-6, abs=1e-7)


# ---- 7. one writer per OUTPUT --------------------------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_holder(tiny_model_dir, pair_file, tmp_path):
    import subprocess
    import textwrap

    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from prefalign.core.locks import exclusive_lock
            with exclusive_lock({str(out / '.prefalign.lock')!r}):
                print("locked", flush=True)
                sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ValueError, match=rf"training output {out} is in use by another "
                                             rf"prefalign process \(PID {holder.pid}"):
            train(config(tiny_model_dir("llama"), pair_file, out))
    finally:
        holder.kill()
        holder.wait()
    assert not (out / "metrics.jsonl").exists()
    train(config(tiny_model_dir("llama"), pair_file, out, max_steps=1))  # free again


# ---- 8. missing models, unwritable outputs --------------------------------------------------------------------
def test_a_missing_model_path_is_one_line(pair_file, tmp_path, capsys):
    from prefalign.cli import main

    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match=rf"--model {missing}: no such folder, and not a model "
                                         "in the local Hugging Face cache"):
        train(TrainConfig(model=str(missing), data=str(pair_file), output=str(tmp_path / "r"),
                          progress=False))
    assert main(["train", "--model", str(missing), "--data", str(pair_file), "--output",
                 str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "Traceback" not in err


def test_an_output_that_cannot_be_written_is_refused_before_the_work(tiny_model_dir, pair_file,
                                                                    tmp_path, monkeypatch):
    import prefalign.train.run_state as run_state

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=rf"--output {blocker / 'run'}: cannot write there"):
        train(config(tiny_model_dir("llama"), pair_file, blocker / "run"))

    class Usage:
        free = 1000

    monkeypatch.setattr(run_state.shutil, "disk_usage", lambda path: Usage())
    loaded = []
    monkeypatch.setattr(Trainer, "_load", lambda self, *a: loaded.append(1))
    with pytest.raises(ValueError, match=r"--output .*run: 0.0 MB free on its disk, and this run "
                                         r"writes at least"):
        train(config(tiny_model_dir("llama"), pair_file, tmp_path / "run"))
    assert not loaded, "the check comes before any model or data loads"


def test_a_full_disk_during_the_run_names_the_file(tiny_model_dir, pair_file, tmp_path,
                                                   monkeypatch):
    from prefalign.core.durable_log import DurableLog

    def full(self, entries):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(DurableLog, "append", full)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=rf"could not write {out / 'metrics.jsonl'}: No space left"):
        train(config(tiny_model_dir("llama"), pair_file, out))


# ---- 9. positions ------------------------------------------------------------------------------------------
def test_rows_are_fitted_to_the_models_positions(tiny_model_dir, pair_file, tmp_path, caplog):
    model = tiny_model_dir("llama", max_positions=6)  # prompts "12+34=" are 6 chars already
    trainer = Trainer(config(model, pair_file, tmp_path / "a", max_steps=1,
                             truncation="truncate_prompt_left"))
    try:
        assert trainer.data_report["tokenize"].truncated > 0
        assert max(len(e.prompt_ids) + max(map(len, e.responses)) for e in trainer.examples) <= 6
        assert trainer.max_length == 6
    finally:
        getattr(trainer, "close", lambda: None)()
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(config(model, pair_file, tmp_path / "b", max_steps=1, max_length=64,
                                 truncation="truncate_prompt_left"))
    trainer.close()
    assert trainer.max_length == 6
    assert any("max_length 64 is more than the 6 positions" in r.getMessage() for r in caplog.records)
