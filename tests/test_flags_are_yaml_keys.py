"""Every flag of a command is also a YAML key of its --config, under the same name. The flags
that set an entry of a mapping (train's --beta is objective_args.beta, iterate's --lr is
train_args.lr) used to be refused as top-level keys ("unknown option(s): beta")."""

import argparse

import pytest

from prefalign.cli import build_parser
from prefalign.cli.schema import settings_from
from prefalign.loop import IterateConfig
from prefalign.core.settings import ConfigError
from prefalign.train.config import TrainConfig

# flags whose YAML form is another key: --config itself, and --set (the objective_args mapping)
NOT_KEYS = {"help", "config", "set"}


def _commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, prefix + (name,))
    if parser.get_default("settings") is not None:
        yield " ".join(prefix), parser


def test_every_flag_of_every_command_is_a_yaml_key_of_its_settings():
    import dataclasses

    seen = 0
    for command, parser in _commands(build_parser()):
        cls = parser.get_default("settings")
        keys = ({f.name for f in dataclasses.fields(cls)} - cls.LIBRARY_ONLY) | set(cls.ROUTED)
        for action in parser._actions:
            if action.dest in NOT_KEYS or not action.option_strings:
                continue
            seen += 1
            assert action.dest in keys, f"prefalign {command} {action.option_strings[0]}"
    assert seen > 100


def _train_yaml(tmp_path, text):
    path = tmp_path / "t.yaml"
    path.write_text("model: m\ndata: d\n" + text)
    return str(path)


def test_a_top_level_objective_key_is_the_flag(tmp_path):
    cfg = TrainConfig.from_sources(_train_yaml(tmp_path, "objective: rpo\nbeta: 0.3\n"
                                                         "rpo_alpha: 0.5\n"))
    assert cfg.objective_args == {"beta": 0.3, "rpo_alpha": 0.5}
    parsed = build_parser().parse_args(["train", "--config", _train_yaml(
        tmp_path, "objective: rpo\nbeta: 0.3\nobjective_args:\n  rpo_alpha: 1\n"),
        "--beta", "0.2"])  # the flag overrides the YAML; the mapping's other entries stay
    assert settings_from(TrainConfig, parsed).objective_args == {"beta": 0.2, "rpo_alpha": 1}


def test_a_value_given_at_the_top_level_and_in_objective_args_is_refused(tmp_path):
    path = _train_yaml(tmp_path, "beta: 0.3\nobjective_args:\n  beta: 0.3\n")
    with pytest.raises(ConfigError, match=r"t.yaml, line 3: beta is also given as "
                                          r"objective_args.beta \(.*t.yaml, line 5\); give it once"):
        TrainConfig.from_sources(path)


def test_a_top_level_objective_key_is_range_checked_at_its_line(tmp_path):
    with pytest.raises(ConfigError, match=r"t.yaml, line 3: beta must be a number, got 'x'"):
        TrainConfig.from_sources(_train_yaml(tmp_path, "beta: x\n"))
    with pytest.raises(ConfigError, match=r"t.yaml, line 3: objective 'sigmoid'.*beta=-1"):
        TrainConfig.from_sources(_train_yaml(tmp_path, "beta: -1\n"))


def test_no_reference_is_a_key_too_and_conflicts_with_a_reference(tmp_path):
    assert TrainConfig.from_sources(_train_yaml(
        tmp_path, "objective: simpo\nno_reference: true\n")).reference == "none"
    assert TrainConfig.from_sources(_train_yaml(tmp_path, "no_reference: false\n")).reference \
        == "auto"
    with pytest.raises(ConfigError, match="no_reference is also given as reference"):
        TrainConfig.from_sources(_train_yaml(tmp_path, "reference: cache\nno_reference: true\n"))


def test_iterate_training_flags_are_top_level_keys(tmp_path):
    from prefalign.loop.iterate import check_train_args

    path = tmp_path / "i.yaml"
    path.write_text("model: m\nprompts: p\nscorer: rm:x\nlr: 1e-3\ntrain_batch_size: 2\n"
                    "beta: 0.5\ntrain_args:\n  grad_accum: 2\n")
    cfg = IterateConfig.from_sources(str(path))
    assert cfg.train_args == {"lr": 1e-3, "batch_size": 2, "grad_accum": 2,
                              "objective_args": {"beta": 0.5}}
    check_train_args(cfg)
    path.write_text("model: m\nprompts: p\nscorer: rm:x\nlr: 1e-3\ntrain_args:\n  lr: 1e-4\n")
    with pytest.raises(ConfigError, match="i.yaml, line 4: lr is also given as train_args.lr"):
        IterateConfig.from_sources(str(path))
