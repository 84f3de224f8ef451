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


def test_a_mixtures_sft_term_takes_the_steps_token_mean(tiny_model_dir, tmp_path):
    """sft's batch reduction divides by the step's mean length: one step of 4 pairs in one
    micro-batch or in two gives the same sft loss and the same update (chosen lengths 1 to 12,
    so the micro-batches' own token means differ)."""
    from prefalign.train import TrainConfig, train

    pair_file = tmp_path / "pairs.jsonl"
    pair_file.write_text("".join(json.dumps({"prompt": f"{i}=", "chosen": "x" * n,
                                             "rejected": "y" * (13 - n)}) + "\n"
                                 for i, n in enumerate((1, 8, 2, 12) * 2)))
    runs = {}
    for name, batch, accum in (("one", 4, 1), ("two", 2, 2)):
        train(TrainConfig(model=str(tiny_model_dir("llama")), data=str(pair_file),
                          objective="sigmoid,sft", output=str(tmp_path / name), max_steps=2,
                          batch_size=batch, grad_accum=accum, progress=False, lr=1e-2,
                          cache_dir=str(tmp_path / "cache")))
        runs[name] = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text()
                      .splitlines()]
    for a, b in zip(runs["one"], runs["two"]):
        assert b["loss/sft"] == pytest.approx(a["loss/sft"], rel=1e-5)
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
