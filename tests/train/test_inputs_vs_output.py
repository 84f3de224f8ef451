"""prefalign train refuses an --output that would overwrite or delete its own inputs."""

import shutil

import pytest

from prefalign.train import TrainConfig, Trainer
from prefalign.train.run_state import OutputError


def _cfg(model, data, out, **kw):
    return TrainConfig(model=str(model), data=str(data), output=str(out),
                       cache_dir=str(out.parent / "cache"), batch_size=2, max_steps=2,
                       progress=False, **kw)


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_output_at_the_model_is_refused_and_the_model_untouched(tiny_model_dir, pair_file,
                                                                tmp_path, where):
    model = tmp_path / "parent" / "Mc"
    shutil.copytree(tiny_model_dir("llama"), model)
    before = _snapshot(model)
    out = {"same": model, "inside": model / "sub", "parent": model.parent}[where]
    with pytest.raises(OutputError, match="--model") as e:
        Trainer(_cfg(model, pair_file, out))
    assert "\n" not in str(e.value) and str(model) in str(e.value) and str(out) in str(e.value)
    assert _snapshot(model) == before


def test_output_at_the_ref_model_is_refused(tiny_model_dir, pair_file, tmp_path):
    ref = tmp_path / "ref"
    shutil.copytree(tiny_model_dir("llama"), ref)
    before = _snapshot(ref)
    with pytest.raises(OutputError, match="--ref-model"):
        Trainer(_cfg(tiny_model_dir("llama"), pair_file, ref, ref_model=str(ref),
                     reference="model"))
    assert _snapshot(ref) == before


def test_overwrite_does_not_delete_a_model_inside_output(tiny_model_dir, pair_file, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(tiny_model_dir("llama"), out / "model")
    before = _snapshot(out / "model")
    with pytest.raises(OutputError, match="--model"):
        Trainer(_cfg(out / "model", pair_file, out, overwrite=True))
    assert _snapshot(out / "model") == before


@pytest.mark.parametrize("flag", ["data", "eval_data"])
def test_overwrite_does_not_delete_data_inside_output(tiny_model_dir, pair_file, tmp_path, flag):
    out = tmp_path / "out"
    out.mkdir()
    inside = out / "metrics.jsonl"
    shutil.copy(pair_file, inside)
    kw = {"data": inside} if flag == "data" else {"data": pair_file, "eval_data": str(inside)}
    data = kw.pop("data")
    with pytest.raises(OutputError, match="--" + flag.replace("_", "-")) as e:
        Trainer(_cfg(tiny_model_dir("llama"), data, out, overwrite=True, **kw))
    assert "\n" not in str(e.value)
    assert inside.read_bytes() == pair_file.read_bytes()


def test_a_missing_model_is_one_line(pair_file, tmp_path):
    with pytest.raises(ValueError) as e:
        Trainer(_cfg(tmp_path / "out" / "model", pair_file, tmp_path / "new"))
    assert "\n" not in str(e.value) and "--model" in str(e.value)
