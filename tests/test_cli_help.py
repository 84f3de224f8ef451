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


def _settings_classes():
    return {name: p.get_default("settings") for name, p in COMMANDS.items()
            if p.get_default("settings") is not None}


def test_every_command_with_options_has_one_settings_class():
    classes = _settings_classes()
    assert set(classes) == set(COMMANDS) - {"prefalign", "prefalign rm", "prefalign data",
                                            "prefalign objectives"}


@pytest.mark.parametrize("name", sorted(_settings_classes()))
def test_flags_come_from_the_settings_class(name):
    """Each field with a flag is a flag of the command whose help is the schema's (what it is,
    what it accepts, its default), and every field has a description of its own."""
    import dataclasses

    cls = _settings_classes()[name]
    helps = {}
    for a in COMMANDS[name]._actions:
        helps.setdefault(a.dest, []).append(a.help or "")
    no_help = [f.name for f in dataclasses.fields(cls) if not (cls.help_text(f.name) or "").strip()]
    assert not no_help, f"give these fields of {cls.__name__} a setting(..., help=...): {no_help}"
    rules = cls.rules()
    for opt in cls.options():
        assert opt.name in helps, opt.name
        assert any(opt.help.replace("%", "%%") in h for h in helps[opt.name]), (opt.name, helps[opt.name])
        if opt.name in rules:
            assert rules[opt.name][1] in opt.help, (opt.name, rules[opt.name][1], opt.help)
        if not opt.required and not opt.is_switch and opt.default not in (None, "", [], {}):
            assert "default" in opt.help


def test_train_help_states_defaults_and_accepted_values():
    helps = {a.dest: a.help for a in COMMANDS["prefalign train"]._actions}
    assert "(default: 5e-06)" in helps["lr"]
    assert "a finite number > 0" in helps["lr"]
    assert "one of keep_start, truncate_prompt_left, drop" in helps["truncation"]
    assert ">= 1, or -1 to use epochs" in helps["max_steps"]
    assert "(required)" in helps["model"]


def test_every_train_config_field_has_help():
    import dataclasses

    from prefalign.train.config import TrainConfig

    no_help = [f.name for f in dataclasses.fields(TrainConfig)
               if not (f.metadata.get("help") or "").strip()]
    assert not no_help, f"give these TrainConfig fields a setting(..., help=...): {no_help}"
