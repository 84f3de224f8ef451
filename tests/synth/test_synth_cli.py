"""The CLI shells: flags map onto the config fields, YAML configs, required options."""

import argparse

import pytest

from prefalign.cli.schema import settings_from
from prefalign.cli.synth import add_iterate_parser, add_synth_parser
from prefalign.core.settings import ConfigError
from prefalign.synth import SynthConfig


def parser():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    add_synth_parser(sub)
    add_iterate_parser(sub)
    return p


def test_synth_flags_and_yaml_become_a_config(tmp_path):
    (tmp_path / "c.yaml").write_text("n: 4\ntemperature: 0.5\nscorer: rm:/x\n")
    args = parser().parse_args([
        "synth", "--config", str(tmp_path / "c.yaml"), "--model", "m", "--prompts", "p.jsonl",
        "--output", "o.jsonl", "--n", "6", "--pairs", "sweet-spot", "--backend", "openai",
        "--base-url", "http://h/v1", "--no-progress"])
    cfg = settings_from(SynthConfig, args)
    assert (cfg.n, cfg.temperature, cfg.scorer, cfg.pairs, cfg.backend, cfg.progress) == (
        6, 0.5, "rm:/x", "sweet-spot", "openai", False)


def test_missing_required_flag_is_named():
    args = parser().parse_args(["synth", "--model", "m", "--prompts", "p", "--output", "o"])
    with pytest.raises(ConfigError, match="--scorer is required"):
        settings_from(SynthConfig, args)


def test_iterate_parser_has_training_flags():
    args = parser().parse_args(["iterate", "--model", "m", "--prompts", "p", "--scorer", "rm:x",
                                "--rounds", "3", "--max-steps", "5", "--beta", "0.2"])
    from prefalign.loop import IterateConfig

    cfg = settings_from(IterateConfig, args)
    assert cfg.rounds == 3
    assert cfg.train_args == {"max_steps": 5, "objective_args": {"beta": 0.2}}
