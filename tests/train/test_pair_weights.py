"""--pair-weight: a column weighting each example's loss; a step's loss is the weighted mean."""

import json

import pytest
import torch
from safetensors.torch import load_file

from prefalign.train import TrainConfig, train

ROWS = [{"prompt": f"{i}+{i}=", "chosen": str(2 * i), "rejected": str(2 * i + 1)}
        for i in range(1, 5)]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _weights(out):
    return load_file(str(next((out / "model").glob("*.safetensors"))))


def _train(model, data, out, tmp_path, **kw):
    return train(TrainConfig(model=str(model), data=str(data), output=str(out), max_steps=1,
                             batch_size=len(ROWS), lr=1e-2, progress=False,
                             cache_dir=str(tmp_path / "cache"), **kw))


def test_zero_weights_train_like_leaving_the_rows_out(tiny_model_dir, tmp_path):
    model = tiny_model_dir("llama")
    weighted = _write(tmp_path / "w.jsonl", [{**r, "strength": w}
                                             for r, w in zip(ROWS, [1.0, 0.0, 1.0, 0.0])])
    subset = _write(tmp_path / "s.jsonl", [ROWS[0], ROWS[2]])
    _train(model, weighted, tmp_path / "a", tmp_path, pair_weight="strength")
    train(TrainConfig(model=str(model), data=str(subset), output=str(tmp_path / "b"),
                      max_steps=1, batch_size=2, lr=1e-2, progress=False,
                      cache_dir=str(tmp_path / "cache")))
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_equal_weights_change_nothing_and_a_missing_column_is_refused(tiny_model_dir, tmp_path):
    model = tiny_model_dir("llama")
    doubled = _write(tmp_path / "d.jsonl", [{**r, "w": 2.0} for r in ROWS])
    plain = _write(tmp_path / "p.jsonl", ROWS)
    _train(model, doubled, tmp_path / "a", tmp_path, pair_weight="w")
    _train(model, plain, tmp_path / "b", tmp_path)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with pytest.raises(ValueError, match=r"p.jsonl, line 1: --pair-weight w needs a w column"):
        _train(model, plain, tmp_path / "c", tmp_path, pair_weight="w")
    zero = _write(tmp_path / "z.jsonl", [{**r, "w": 0} for r in ROWS])
    with pytest.raises(ValueError, match="every example weighs 0"):
        _train(model, zero, tmp_path / "e", tmp_path, pair_weight="w")


def test_a_weight_may_be_a_column_the_loader_reads_into_the_record(tiny_model_dir, tmp_path):
    """margin is a record field, not an extra column: it was refused as missing."""
    model = tiny_model_dir("llama")
    data = _write(tmp_path / "m.jsonl", [{**r, "margin": 1.0} for r in ROWS])
    result = _train(model, data, tmp_path / "a", tmp_path, pair_weight="margin")
    assert result.steps == 1


def test_the_logged_loss_is_the_weighted_one(tiny_model_dir, tmp_path):
    model = tiny_model_dir("llama")
    weighted = _write(tmp_path / "w.jsonl", [{**r, "w": w}
                                             for r, w in zip(ROWS, [3.0, 0.0, 1.0, 0.0])])
    subset = _write(tmp_path / "s.jsonl", [ROWS[0], ROWS[0], ROWS[0], ROWS[2]])
    # another reference, so the step-1 losses differ from pair to pair (not all log 2)
    ref = str(tiny_model_dir("llama", seed=1))
    _train(model, weighted, tmp_path / "a", tmp_path, pair_weight="w", ref_model=ref)
    _train(model, subset, tmp_path / "b", tmp_path, ref_model=ref)
    first = [json.loads((tmp_path / x / "metrics.jsonl").read_text().splitlines()[0])["loss"]
             for x in ("a", "b")]
    assert first[0] == pytest.approx(first[1], abs=1e-6)  # 3:1 weights = the row three times
