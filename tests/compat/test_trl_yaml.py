"""`prefalign train --config FILE` reads a TRL recipe (`trl dpo --config FILE`: TRL's field
names and defaults) with the compat table: TRL's DPO and KTO quickstarts written as recipes give
TRL's own step values (trl_quickstart_reference.json); a refusal, a bad value and a value given
twice are one line naming the file and the line; flags still override the file."""

import json
import math
from pathlib import Path

import pytest

import fixture
from prefalign.cli import main

REFERENCE = json.loads((Path(__file__).parent / "trl_quickstart_reference.json").read_text())


def _recipe(tmp_path, model, data, *extra: str) -> Path:
    """The quickstart's DPOConfig/KTOConfig as a recipe file; ``extra`` lines go on the end."""
    path = tmp_path / "recipe.yaml"
    path.write_text("\n".join([
        "# TRL's quickstart as a recipe (trl dpo --config recipe.yaml)",
        f"model_name_or_path: {model}", f"dataset_name: {data}",
        f"output_dir: {tmp_path / 'out'}", "logging_steps: 1", "max_steps: 2", "use_cpu: true",
        *extra]) + "\n")
    return path


def _steps(tmp_path) -> list[dict]:
    return [json.loads(line) for line in
            (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err.splitlines()[0]


def test_the_dpo_quickstart_as_a_recipe_gives_trls_step_values(tmp_path, quickstart_model):
    recipe = _recipe(tmp_path, quickstart_model, fixture.dpo_data(tmp_path / "dpo.jsonl"))
    assert main(["train", "--config", str(recipe), "--no-progress"]) == 0
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    # TRL's defaults, not prefalign's: lr 1e-6, batch 8, seed 42, bf16 and checkpointing on
    assert (config["lr"], config["batch_size"], config["seed"], config["bf16"],
            config["gradient_checkpointing"], config["objective"]) == \
        (1e-6, 8, 42, True, True, "sigmoid")
    ours, ref = _steps(tmp_path), REFERENCE["dpo"]["steps"]
    assert [s["step"] for s in ours] == [1, 2]
    for mine, trl in zip(ours, ref):
        for key in ("logps/chosen", "logps/rejected"):
            assert mine[key] == pytest.approx(trl[key], rel=1e-5), (mine["step"], key)
    assert ours[0]["loss"] == pytest.approx(ref[0]["loss"], abs=1e-5)
    assert ref[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)


def test_the_kto_quickstart_as_a_recipe_gives_trls_losses(tmp_path, quickstart_model):
    # TRL's KTOConfig default loss_type "kto" written out makes the file a `trl kto` recipe
    recipe = _recipe(tmp_path, quickstart_model, fixture.kto_data(tmp_path / "kto.jsonl"),
                     "loss_type: kto", "desirable_weight: 1.0")
    assert main(["train", "--config", str(recipe), "--no-progress"]) == 0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["objective"] == "kto"
    ours, ref = _steps(tmp_path), REFERENCE["kto"]["steps"]
    assert [s["step"] for s in ours] == [1, 2]
    assert ours[0]["loss"] == pytest.approx(ref[0]["loss"], abs=1e-4)
    assert ours[1]["loss"] == pytest.approx(ref[1]["loss"], abs=1e-4)
    for mine, trl in zip(ours, ref):  # prefalign's names for TRL's logps/chosen, logps/rejected
        assert mine["logps/desirable"] == pytest.approx(trl["logps/chosen"], rel=1e-5)
        assert mine["logps/undesirable"] == pytest.approx(trl["logps/rejected"], rel=1e-5)


def test_a_flag_overrides_the_recipe_and_a_mixture_maps(tmp_path, quickstart_model):
    recipe = _recipe(tmp_path, quickstart_model, fixture.dpo_data(tmp_path / "dpo.jsonl"),
                     "learning_rate: 5.0e-7", "loss_type: [sigmoid, sft]",
                     "loss_weights: [1.0, 0.5]", "beta: 0.2", "bf16: false")
    assert main(["train", "--config", str(recipe), "--lr", "1e-4", "--max-steps", "1",
                 "--no-progress"]) == 0
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["lr"] == 1e-4 and config["max_steps"] == 1 and config["bf16"] is False
    assert config["objective"] == "1*sigmoid+0.5*sft"
    assert config["objective_args"]["beta"] == 0.2


def test_refusals_and_bad_values_name_the_file_and_the_line(tmp_path, quickstart_model, capsys):
    data = fixture.dpo_data(tmp_path / "dpo.jsonl")

    def err(*extra):
        recipe = _recipe(tmp_path, quickstart_model, data, *extra)
        return _error(capsys, ["train", "--config", str(recipe)])

    # the recipe's own lines are 1-7; an extra line is line 8 on
    assert f"{tmp_path / 'recipe.yaml'}, line 8: fp16=True is not supported" in err("fp16: true")
    assert "line 9: padding_free=True is not supported" in err("beta: 0.1", "padding_free: true")
    assert "line 8: learning_rate='fast': expected a number" in err("learning_rate: fast")
    # prefalign's spelling of a TRL field in a TRL recipe: half in each tool's terms
    assert "line 8: lr is prefalign's name for TRL's learning_rate" in err(
        "lr: 1.0e-5", "learning_rate: 1.0e-6")
    assert "line 8: objective is prefalign's name for TRL's loss_type" in err("objective: ipo")
    assert "line 8: objective_args must be a mapping" in err("objective_args: 5")
    assert "line 8: use_peft='yes': expected true or false" in err("use_peft: 'yes'")
    assert "line 8: loss_type=['kto', 'sft']: KTOConfig takes" in err("loss_type: [kto, sft]",
                                                                       "desirable_weight: 1.0")
    assert "line 8: beta is given twice" in err("beta: 0.2", "objective_args: {beta: 0.3}")
    assert "line 8: learning_rat: not a field of TRL's DPOConfig" in err("learning_rat: 0.1")
    assert "line 8: use_peft without lora_target_modules" in err("use_peft: true")
    assert "line 8: load_in_8bit=True is not supported" in err("load_in_8bit: true")
    # values of the wrong kind are refused, not truth-tested or rounded
    assert "line 8: seed=1.5: expected a whole number" in err("seed: 1.5")
    assert "line 8: bf16='no': expected true or false" in err("bf16: 'no'")
    assert "line 8: learning_rate=True: expected a number" in err("learning_rate: true")
    assert "line 8: loss_type=5: expected a loss type's name" in err("loss_type: 5")
    assert "line 8: loss_weights has 2 weight(s) for loss_type ['sigmoid']" in err(
        "loss_weights: [1, 2]")
    # a data set or model that is not there is named by its line and TRL's key
    recipe = _recipe(tmp_path, quickstart_model, "trl-lib/ultrafeedback_binarized")
    assert ("recipe.yaml, line 3 (dataset_name): data trl-lib/ultrafeedback_binarized: no such "
            "file or folder") in _error(capsys, ["train", "--config", str(recipe)])
    recipe = _recipe(tmp_path, tmp_path / "no-model", data)
    assert "recipe.yaml, line 2 (model_name_or_path): model " in _error(
        capsys, ["train", "--config", str(recipe)])
    # a value TRL accepts that prefalign's own check refuses names the line and TRL's name
    message = err("learning_rate: -1.0")
    assert "line 8 (learning_rate)" in message and "lr" in message


def test_save_strategy_no_saves_nothing_whatever_the_order(tmp_path):
    from prefalign.compat.trl_fields import read_trl_yaml

    for loaded in ({"output_dir": "o", "save_strategy": "no"},
                   {"output_dir": "o", "save_strategy": "no", "save_steps": 20},
                   {"output_dir": "o", "save_steps": 20, "save_strategy": "no"}):
        values, origins = read_trl_yaml("r.yaml", loaded, {k: i + 1 for i, k in
                                                           enumerate(loaded)})
        assert values["save_steps"] == 0, loaded
        line = list(loaded).index("save_strategy") + 1
        assert origins["save_steps"] == f"r.yaml, line {line} (save_strategy)"


def test_a_prefalign_config_is_read_as_before(tmp_path):
    from prefalign.compat.trl_fields import read_trl_yaml

    loaded = {"model": "m", "lr": 1e-5, "objective_args": {"beta": 0.2}}
    lines = {"model": 1, "lr": 2, "objective_args": 3, "objective_args.beta": 4}
    values, origins = read_trl_yaml("c.yaml", loaded, lines)
    assert values == loaded and origins["objective_args.beta"] == "c.yaml, line 4"
