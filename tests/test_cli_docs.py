"""docs/cli.md is generated from the commands' settings classes (scripts/cli_docs.py) and is
current; it lists every flag of every command."""

import argparse
import importlib.util
from pathlib import Path

from prefalign.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("cli_docs", ROOT / "scripts" / "cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_is_current():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert text == _script().render(), "docs/cli.md is stale: run python scripts/cli_docs.py"


def test_the_page_lists_every_flag_with_its_yaml_key():
    text = _script().render()
    for name, parser in _script()._commands(build_parser()):
        for a in parser._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            for flag in a.option_strings:
                assert f"`{flag}`" in text, (name, flag)
    assert "| `--lr` | `lr` | peak learning rate; a finite number > 0 (default: 5e-06) |" in text
