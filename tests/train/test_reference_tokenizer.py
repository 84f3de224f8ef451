"""A reference model whose tokenizer differs from the policy's is refused before any work."""

import json

import pytest

from prefalign.cli import main
from prefalign.engine import loading
from prefalign.train import TrainConfig, Trainer


def _no_weights(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the tokenizers were compared")

    monkeypatch.setattr(loading, "load_causal_lm", refuse)
    import prefalign.train.trainer as trainer

    monkeypatch.setattr(trainer, "load_causal_lm", refuse)


@pytest.mark.parametrize("ref_tok", ["word", "bpe"])
def test_train_refuses_a_reference_with_another_tokenizer(tiny_model_dir, pair_file, tmp_path,
                                                          monkeypatch, ref_tok):
    policy, ref = tiny_model_dir("llama", "char"), tiny_model_dir("llama", ref_tok)
    _no_weights(monkeypatch)
    cfg = TrainConfig(model=str(policy), ref_model=str(ref), data=str(pair_file),
                      output=str(tmp_path / "out"), max_steps=1, progress=False)
    with pytest.raises(ValueError, match="--ref-model") as e:
        Trainer(cfg)
    assert "\n" not in str(e.value) and "tokenizer" in str(e.value)
    assert not (tmp_path / "out" / "run.json").exists()


def test_eval_refuses_a_reference_with_another_tokenizer(tiny_model_dir, pair_file, tmp_path,
                                                         capsys):
    rc = main(["eval", "--model", str(tiny_model_dir("llama", "char")), "--ref-model",
               str(tiny_model_dir("llama", "word")), "--data", str(pair_file),
               "--output", str(tmp_path / "e.json")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("prefalign")]
    assert rc == 2 and len(err) == 1 and "--ref-model" in err[0] and "tokenizer" in err[0]


def test_same_tokenizer_in_another_folder_is_accepted(tiny_model_dir, tmp_path):
    import shutil

    a = tiny_model_dir("llama", "char")
    b = tmp_path / "copy"
    shutil.copytree(a, b)
    cfg = json.loads((b / "tokenizer_config.json").read_text())
    cfg["chat_template"] = "{{ messages[0]['content'] }}"  # another template, same ids
    (b / "tokenizer_config.json").write_text(json.dumps(cfg))
    loading.check_same_tokenizer(str(a), str(b))
