"""Training settings found missing by a hostile probe: pairs that differ only in whitespace can
be kept on request (synth had the option, training did not), and an --output or --cache-dir
that is a file is refused naming the flag (it failed later, unnamed)."""

import json

import pytest

from prefalign.core.settings import ConfigError
from prefalign.train import TrainConfig, train
from prefalign.train.run_state import run_fingerprint


def _rows(path):
    rows = [{"prompt": "q: 1+1=", "chosen": "2", "rejected": "3"},
            {"prompt": "q: 2+2=", "chosen": "4", "rejected": "4 "}]  # whitespace only
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_whitespace_variants_are_refused_unless_kept(tiny_model_dir, tmp_path):
    data = _rows(tmp_path / "d.jsonl")
    base = dict(model=str(tiny_model_dir("llama")), data=str(data), batch_size=2, max_steps=1,
                lr=1e-4, progress=False, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="line 2.*whitespace"):
        train(TrainConfig(output=str(tmp_path / "a"), **base))
    result = train(TrainConfig(output=str(tmp_path / "b"), keep_whitespace_variants=True, **base))
    assert result.steps == 1
    line = json.loads((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[0])
    assert line["pairs"] == 2


def test_the_setting_enters_the_fingerprint_only_when_on():
    """A run recorded before the setting existed (so without it) still resumes."""
    def fp(**kw):
        cfg = TrainConfig(model="m", data="d", **kw)
        return run_fingerprint(cfg, objective="sigmoid", hparams={}, reference="cache",
                               processes=1, max_length=None)

    assert "keep_whitespace_variants" not in fp()
    assert fp(keep_whitespace_variants=True)["keep_whitespace_variants"] is True


@pytest.mark.parametrize("name,flag", [("output", "--output"), ("cache_dir", "--cache-dir")])
def test_a_file_where_a_folder_goes_is_refused_naming_the_flag(tmp_path, name, flag):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConfigError, match=f"^{flag} {afile}: exists and is not a folder"):
        TrainConfig.from_sources(None, model="m", data="d", **{name: str(afile)})
