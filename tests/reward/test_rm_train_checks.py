"""rm train refuses bad settings before loading, an --output at the model, and a non-finite run."""

import json
import shutil

import pytest

from prefalign.cli import main
from prefalign.reward import train as rm_train
from prefalign.reward.train import NonFiniteError, train_reward_model


def _pairs(path, n=8):
    rows = [{"prompt": f"q{i}:", "chosen": "ab" * (i % 3 + 1), "rejected": "xy" * (i % 2 + 1)}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_output_at_the_model_is_refused_and_the_model_untouched(tiny_model_dir, tmp_path, capsys,
                                                                where):
    model = tmp_path / "p" / "M"
    shutil.copytree(tiny_model_dir("llama"), model)
    before = _snapshot(model)
    out = {"same": model, "inside": model / "rm", "parent": model.parent}[where]
    rc = main(["rm", "train", "--model", str(model), "--data", str(_pairs(tmp_path / "d.jsonl")),
               "--output", str(out), "--max-steps", "1"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("prefalign")]
    assert rc == 2 and len(err) == 1 and "--model" in err[0] and str(model) in err[0] and str(out) in err[0]
    assert _snapshot(model) == before


def test_a_huge_learning_rate_stops_naming_the_step_and_saves_no_model(tiny_model_dir, tmp_path):
    out = tmp_path / "rm"
    with pytest.raises(NonFiniteError, match=r"step \d+") as e:
        train_reward_model(tiny_model_dir("llama"), _pairs(tmp_path / "d.jsonl"), out, lr=1e30,
                           max_steps=6, batch_size=4)
    assert "\n" not in str(e.value)
    assert not list(out.glob("*.safetensors")) and not (out / "config.json").exists()
    for line in (out / "metrics.jsonl").read_text().splitlines():  # only finite steps logged
        assert all(v == v for v in json.loads(line).values() if isinstance(v, float))


@pytest.mark.parametrize("flag,value", [("--batch-size", "0"), ("--lr", "-1"), ("--lr", "nan"),
                                        ("--lr", "0"), ("--batch-size", "2.5"),
                                        ("--lr", "inf"), ("--max-steps", "0"),
                                        ("--epochs", "0"), ("--max-length", "1")])
def test_bad_settings_are_refused_before_loading(tmp_path, capsys, monkeypatch, flag, value):
    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the settings were checked")

    monkeypatch.setattr(rm_train, "load_reward_model", no_load)
    rc = main(["rm", "train", "--model", str(tmp_path / "M"), "--data",
               str(_pairs(tmp_path / "d.jsonl")), "--output", str(tmp_path / "out"), flag, value])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("prefalign")]
    assert rc == 2 and len(err) == 1 and err[0].count(flag) == 1 and "must be" in err[0]
    assert not (tmp_path / "out").exists()


def test_the_library_applies_the_same_rules(tmp_path, monkeypatch):
    """`train_reward_model` checks its settings with RewardTrainConfig's rules, the CLI's own."""
    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the settings were checked")

    monkeypatch.setattr(rm_train, "load_reward_model", no_load)
    for kwargs, message in (({"lr": 0.0}, "--lr must be a finite number > 0"),
                            ({"weight_decay": -1.0}, "--weight-decay must be a finite number >= 0"),
                            ({"max_grad_norm": float("nan")}, "--max-grad-norm must be")):
        with pytest.raises(ValueError, match=message):
            rm_train.train_reward_model(tmp_path / "M", _pairs(tmp_path / "d.jsonl"),
                                        tmp_path / "out", **kwargs)
