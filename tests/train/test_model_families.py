"""Train and eval pick an attention implementation the family supports, the same way, and a
family the engine cannot run exactly is refused before any work, in one line."""

import json

import pytest
import torch

from prefalign.cli import main
from prefalign.engine.attention import UnsupportedModelError
from prefalign.engine.families import by_name
from prefalign.engine.loading import check_model, resolve_attn_implementation
from prefalign.train import TrainConfig, train


def test_auto_picks_what_the_family_supports():
    assert resolve_attn_implementation(by_name("llama").config()) == "sdpa"
    assert resolve_attn_implementation(by_name("gemma2").config()) == "eager"
    assert resolve_attn_implementation(by_name("gpt_oss").config()) == "eager"
    with pytest.raises(UnsupportedModelError, match="gemma2 does not support .*'sdpa'.*eager"):
        resolve_attn_implementation(by_name("gemma2").config(), "sdpa")
    with pytest.raises(UnsupportedModelError, match="flash_attention_2"):
        resolve_attn_implementation(by_name("llama").config(), "flash_attention_2")


def test_train_and_eval_run_gemma2_with_their_defaults(tiny_model_dir, pair_file, tmp_path):
    model = tiny_model_dir("gemma2")
    out = tmp_path / "run"
    result = train(TrainConfig(model=str(model), data=str(pair_file), output=str(out),
                               cache_dir=str(tmp_path / "cache"), batch_size=2, max_steps=2,
                               lr=1e-3, progress=False))
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert first["loss"] == pytest.approx(float(torch.log(torch.tensor(2.0))), abs=1e-5)
    code = main(["eval", "--model", str(result.output_dir / "model"), "--ref-model", str(model),
                 "--data", str(pair_file), "--output", str(tmp_path / "eval")])
    assert code == 0
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert "rewards/accuracy" in json.dumps(report)


def _save_config(family, path):
    config = by_name(family).config()
    config.save_pretrained(path)
    return path


def test_a_family_that_cannot_be_packed_is_refused_before_reading_data(tmp_path, capsys):
    model = _save_config("bloom", tmp_path / "bloom")  # a config only: no weights are needed
    code = main(["train", "--model", str(model), "--data", str(tmp_path / "missing.jsonl"),
                 "--output", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0
    assert "bloom: its ALiBi biases" in err and "Traceback" not in err
    assert err.splitlines()[0].startswith("prefalign train: error: bloom:")


def test_router_aux_loss_follows_the_model_config(tmp_path):
    from transformers import AutoConfig

    path = _save_config("mixtral", tmp_path / "mixtral")
    assert check_model(path, router_aux_loss=True) == "sdpa"
    config = AutoConfig.from_pretrained(path)
    config.output_router_logits = True
    config.save_pretrained(path)
    from prefalign.train.preflight import router_aux_coef

    assert router_aux_coef(TrainConfig(model=str(path))) == config.router_aux_loss_coef
    assert router_aux_coef(TrainConfig(model=str(path), router_aux_loss_coef=0.0)) == 0.0
    with pytest.raises(UnsupportedModelError, match="load-balancing"):
        check_model(_save_config("llama", tmp_path / "llama"), router_aux_loss=True)


def test_eval_loads_a_saved_lora_adapter(tiny_model_dir, pair_file, tmp_path):
    model = tiny_model_dir("mistral")
    result = train(TrainConfig(model=str(model), data=str(pair_file), output=str(tmp_path / "r"),
                               cache_dir=str(tmp_path / "cache"), batch_size=2, max_steps=1,
                               lora=True, lora_r=2, progress=False))
    adapter = result.output_dir / "model"
    assert (adapter / "adapter_config.json").is_file()
    assert check_model(adapter) == "sdpa"
    assert main(["eval", "--model", str(adapter), "--data", str(pair_file),
                 "--output", str(tmp_path / "eval")]) == 0
