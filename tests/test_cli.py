"""The command line's entry point: user errors are one line and exit 2."""

import pytest

from prefalign.cli import main


def test_a_user_error_is_one_line_and_exit_code_two(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PREFALIGN_DEBUG", raising=False)
    code = main(["demo", "--compare", "dpo,no_such_objective", "--output", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2
    assert "prefalign demo: error: unknown objective 'no_such_objective'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "d").exists()  # refused before any work


def test_debug_mode_raises_the_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFALIGN_DEBUG", "1")
    with pytest.raises(ValueError, match="unknown objective"):
        main(["demo", "--compare", "nope", "--output", str(tmp_path / "d")])


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "Traceback" not in err[0]
    return err[0]


def test_settings_errors_name_the_flag_or_the_file_and_line(tmp_path, capsys, monkeypatch):
    """Every command reads flags and --config through its one schema: a wrong type, a value out
    of range, an unknown key or a missing option is one line, before any work."""
    monkeypatch.delenv("PREFALIGN_DEBUG", raising=False)
    out = tmp_path / "never"
    assert "--n must be a whole number, got '2.5'" in _error(capsys, [
        "synth", "--model", "m", "--prompts", "p", "--scorer", "rm:x", "--n", "2.5",
        "--output", str(out)])
    assert "--lr must be a finite number > 0, got 0.0" in _error(capsys, [
        "rm", "train", "--model", "m", "--data", "d", "--output", str(out), "--lr", "0"])
    assert "--num-samples must be >= 1, got 0" in _error(capsys, [
        "eval", "--model", "m", "--prompts", "p", "--output", str(out), "--num-samples", "0"])
    assert "--data, --prompts or both are required" in _error(capsys, [
        "eval", "--model", "m", "--output", str(out)])
    assert "--scorer is required" in _error(capsys, ["iterate", "--model", "m", "--prompts", "p"])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: m\nprompts: p\nscorer: rm:x\nroundz: 3\n")
    assert f"{cfg}, line 4: unknown option(s): roundz (did you mean rounds?)" in _error(
        capsys, ["iterate", "--config", str(cfg)])
    cfg.write_text("seed: 1\nquick: maybe\n")
    assert f"{cfg}, line 2: quick must be true or false, got 'maybe'" in _error(
        capsys, ["demo", "--config", str(cfg), "--output", str(out)])
    assert not out.exists()


def test_an_objective_hyperparameter_given_twice_is_refused(tmp_path, capsys, monkeypatch):
    """--beta 2 with --set beta=1 used to train with one of them silently."""
    monkeypatch.delenv("PREFALIGN_DEBUG", raising=False)
    assert "beta given both as a flag and in --set" in _error(capsys, [
        "train", "--model", "m", "--data", "d", "--output", str(tmp_path / "o"), "--beta", "2",
        "--set", "beta=1"])


def test_a_switch_from_yaml_can_be_turned_off_by_its_no_twin(tmp_path):
    from prefalign.cli import build_parser
    from prefalign.cli.schema import settings_from
    from prefalign.synth import SynthConfig

    cfg = tmp_path / "c.yaml"
    cfg.write_text("keep_whitespace_variants: true\nprogress: false\n")
    base = ["synth", "--config", str(cfg), "--model", "m", "--prompts", "p", "--scorer", "rm:x"]
    parsed = settings_from(SynthConfig, build_parser().parse_args(base))
    assert parsed.keep_whitespace_variants is True and parsed.progress is False
    parsed = settings_from(SynthConfig, build_parser().parse_args(
        base + ["--no-keep-whitespace-variants", "--progress"]))
    assert parsed.keep_whitespace_variants is False and parsed.progress is True


def test_an_unknown_objective_hyperparameter_names_its_own_line(tmp_path, capsys, monkeypatch):
    """In a nested objective_args mapping the error points at the unknown name's line (it named
    the line of objective_args itself)."""
    monkeypatch.delenv("PREFALIGN_DEBUG", raising=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: m\ndata: d\nobjective_args:\n  beta: 0.2\n  betta: 1\n")
    assert f"{cfg}, line 5: objective 'sigmoid' has no hyperparameter(s) betta" in _error(
        capsys, ["train", "--config", str(cfg), "--output", str(tmp_path / "o")])


def test_demo_set_merges_with_the_yaml_objective_args_and_is_range_checked(tmp_path, capsys,
                                                                           monkeypatch):
    """--set replaced the YAML mapping (dropping its other names) and was checked only for
    names, so a bad value failed after minutes of SFT; both are refused before any work now."""
    monkeypatch.delenv("PREFALIGN_DEBUG", raising=False)
    cfg = tmp_path / "d.yaml"
    cfg.write_text("objective: rpo\nobjective_args:\n  betta: 0.5\n")
    assert "has no hyperparameter(s) betta" in _error(
        capsys, ["demo", "--config", str(cfg), "--set", "beta=0.2", "--output", str(tmp_path / "o")])
    assert "hyperparameter beta=-1 is out of range" in _error(
        capsys, ["demo", "--set", "beta=-1", "--output", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
