"""A weighted mixture under the trainer: one forward, each term's own loss logged, the mixture's
canonical name in the run's config."""

import json

import pytest


def test_training_a_mixture_logs_each_terms_loss(tiny_model_dir, pair_file, tmp_path):
    from prefalign.train import TrainConfig, train

    cfg = TrainConfig(model=str(tiny_model_dir("llama")), data=str(pair_file),
                      objective="sigmoid,bco_pair,sft", objective_weights=[0.8, 0.2, 1.0],
                      output=str(tmp_path / "r"), max_steps=2, batch_size=4, progress=False,
                      cache_dir=str(tmp_path / "cache"))
    train(cfg)
    first = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])
    # step 1: policy = reference, so sigmoid and bco_pair are log 2 and 2 log 2
    assert first["loss/sigmoid"] == pytest.approx(0.693147, abs=1e-5)
    assert first["loss/bco_pair"] == pytest.approx(2 * 0.693147, abs=1e-5)
    assert first["loss"] == pytest.approx(0.8 * first["loss/sigmoid"] + 0.2 * first["loss/bco_pair"]
                                          + first["loss/sft"], rel=1e-5)
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["objective"] == "0.8*sigmoid+0.2*bco_pair+1*sft"
