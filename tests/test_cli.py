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
