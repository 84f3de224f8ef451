"""The settings schema (prefalign.core.settings) as every command reads it: text from flags and YAML
coerced by declared type ("null" turns an optional value off), library-only objects refused as
keys, and the cross-field rules of TrainConfig and the reward and iterate settings."""

import pytest

from prefalign.loop import IterateConfig
from prefalign.loop.iterate import check_train_args
from prefalign.core.settings import ConfigError
from prefalign.synth import SynthConfig
from prefalign.train.config import TrainConfig


def test_null_from_a_flag_turns_an_optional_value_off(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: m\ndata: d\nmax_length: 512\nrouter_aux_loss_coef: 0.01\n")
    got = TrainConfig.from_sources(str(cfg), max_length="null", router_aux_loss_coef="None")
    assert got.max_length is None and got.router_aux_loss_coef is None
    with pytest.raises(ConfigError, match="--lr must be a number, got 'null'"):
        TrainConfig.from_sources(None, model="m", data="d", lr="null")  # not optional


def test_lora_target_modules_from_text_are_module_names():
    """A string went to PEFT as one regex (matching no module); now names, comma-separated."""
    def modules(value):
        return TrainConfig.from_sources(None, model="m", data="d", lora_target_modules=value) \
            .lora_target_modules

    assert modules("q_proj,v_proj") == ["q_proj", "v_proj"]
    assert modules("q_proj") == ["q_proj"]
    assert modules("all-linear") == "all-linear"
    assert modules(["k_proj"]) == ["k_proj"]


@pytest.mark.parametrize("cls,key", [(SynthConfig, "scorer_obj"), (SynthConfig, "generator"),
                                     (IterateConfig, "scorer_obj")])
def test_library_only_objects_are_not_settings(tmp_path, cls, key):
    """YAML could set them to text, which crashed later with a traceback."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"{key}: something\n")
    with pytest.raises(ConfigError, match=f"line 1: unknown option\\(s\\): {key}"):
        cls.from_sources(str(cfg))
    assert key not in {o.name for o in cls.options()}


def test_a_yaml_key_that_is_not_text_is_one_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("1: x\n")
    with pytest.raises(ConfigError, match="unknown option"):
        TrainConfig.from_sources(str(cfg))


def test_iterate_train_args_are_checked_and_typed_before_any_round():
    cfg = IterateConfig(model="m", prompts="p", scorer="rm:x",
                        train_args={"lr": "1e-5", "max_steps": "3"})
    check_train_args(cfg)
    assert cfg.train_args == {"lr": 1e-5, "max_steps": 3}  # typed: one fingerprint for both forms
    for args, message in (({"learning_rate": 1}, r"train_args.learning_rate: not a training "
                                                 r"setting \(did you mean lr\?\)"),
                          ({"seed": 3}, "train_args.seed: seed is set by each round"),
                          ({"lr": -1.0}, "train_args.lr must be a finite number > 0")):
        with pytest.raises(ConfigError, match=message):
            check_train_args(IterateConfig(model="m", prompts="p", scorer="rm:x",
                                           train_args=args))
    with pytest.raises(ConfigError, match="^--lr must be"):
        check_train_args(IterateConfig(train_args={"lr": -1.0}), {"lr": "--lr"})


def test_reward_settings_come_back_typed():
    from prefalign.reward.train import check_settings

    got = check_settings(lr="1e-5", epochs=1, max_steps=2.0, batch_size=4.0, max_length=64,
                         weight_decay=0, max_grad_norm=None, center_rewards_coefficient=None)
    assert got["max_steps"] == 2 and isinstance(got["max_steps"], int)
    assert got["batch_size"] == 4 and got["lr"] == 1e-5
    with pytest.raises(ConfigError, match="--max-steps must be a whole number"):
        check_settings(lr=1e-5, epochs=1, max_steps=2.5, batch_size=4, max_length=64,
                       weight_decay=0, max_grad_norm=None, center_rewards_coefficient=None)
