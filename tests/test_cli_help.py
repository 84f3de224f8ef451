"""Every option of every `prefalign` command has help text; an option that takes a value says
its default (or that it is required) and, where argparse knows it, the default it states is the
parser's own."""

import argparse

import pytest

from prefalign.cli import build_parser


def _commands(parser, prefix="prefalign"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prefix} {name}")


COMMANDS = dict(_commands(build_parser()))


def test_every_command_is_walked():
    assert {"prefalign train", "prefalign synth", "prefalign iterate", "prefalign eval",
            "prefalign report", "prefalign demo", "prefalign tiny-model",
            "prefalign objectives"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help_with_its_default(name):
    parser = COMMANDS[name]
    problems = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        label = "/".join(action.option_strings) or action.dest
        text = action.help or ""
        if not text.strip() or text == argparse.SUPPRESS:
            problems.append(f"{label}: no help")
            continue
        takes_value = action.nargs != 0 and action.option_strings
        if not takes_value or action.required:
            continue
        if "%(default)" in text:
            continue
        if action.default not in (None, argparse.SUPPRESS) and str(action.default) not in text:
            problems.append(f"{label}: default {action.default!r} not in {text!r}")
        elif not any(w in text.lower() for w in ("default", "required")):
            problems.append(f"{label}: help says neither its default nor that it is required")
    assert not problems, f"{name}: " + "; ".join(problems)


def test_train_help_comes_from_train_config_defaults_and_rules():
    """`prefalign train`'s flags default to None (so YAML values are not overridden): their help
    states TrainConfig's default and the values its validation accepts."""
    import dataclasses

    from prefalign.train.config import TrainConfig

    helps = {a.dest: a.help for a in COMMANDS["prefalign train"]._actions}
    assert "default 5e-06" in helps["lr"]
    assert "one of keep_start, truncate_prompt_left, drop" in helps["truncation"]
    assert ">= 1, or -1 to use epochs" in helps["max_steps"]
    for f in dataclasses.fields(TrainConfig):
        if f.name in helps and f.default not in (dataclasses.MISSING, None, "", False):
            assert f"default {f.default}" in helps[f.name], f.name


def test_every_train_config_field_has_help():
    import dataclasses

    from prefalign.train.config import FIELD_HELP, TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert fields - set(FIELD_HELP) == set(), "add these to train/config.py FIELD_HELP"
    assert set(FIELD_HELP) - fields == set()
