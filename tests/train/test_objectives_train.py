"""Every objective of the registry trains on data of its shape; wrong combinations fail early."""

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from prefalign import objectives
from prefalign.train import TrainConfig, train
from prefalign.train.step_loss import needs_token_kl

# Objectives that need inputs the trainer does not supply yet are listed with the reason.
NOT_TRAINABLE: dict[str, str] = {}

# Hyperparameters some objectives need to be meaningful on tiny batches.
EXTRA = {"exo_pair": {"label_smoothing": 1e-3}}


def data_for(name, shape, files):
    if name == "npo":  # negatives only (a forget set)
        return files["negatives"]
    entry = objectives.get(name)
    if "margin" in entry.inputs and not entry.margin_from_scores:  # MODPO: a margin column
        return files["margins"]
    if {"margin", "strength"} & entry.inputs:  # ODPO's margin from the scores; soft labels
        return files["scored"]
    return {"pairwise": files["pair"], "unpaired": files["unpaired"], "listwise": files["ranked"],
            "sft": files["sft"]}[shape]


@pytest.fixture
def files(pair_file, unpaired_file, ranked_file, sft_file, tmp_path):
    negatives = tmp_path / "negatives.jsonl"
    negatives.write_text("".join(line for line in unpaired_file.read_text().splitlines(True)
                                 if '"label": false' in line))
    scored = tmp_path / "scored.jsonl"
    rows = [json.loads(line) for line in pair_file.read_text().splitlines()]
    scored.write_text("".join(json.dumps({**r, "score_chosen": 1.0 + i % 3, "score_rejected": 0.5,
                                          "strength": 0.5 + 0.1 * (i % 5)})
                              + "\n" for i, r in enumerate(rows)))
    margins = tmp_path / "margins.jsonl"
    margins.write_text("".join(json.dumps({**r, "margin": 0.5 - 0.25 * (i % 3)}) + "\n"
                               for i, r in enumerate(rows)))
    return {"pair": pair_file, "unpaired": unpaired_file, "ranked": ranked_file, "sft": sft_file,
            "negatives": negatives, "scored": scored, "margins": margins}


TRAINABLE = [o.name for o in objectives.available() if o.name not in NOT_TRAINABLE]


@pytest.mark.parametrize("name", TRAINABLE)
def test_objective_trains(name, tiny_model_dir, files, tmp_path):
    spec = objectives.get(name)
    model_dir = tiny_model_dir("llama")
    # mrpo combines several references: the start and another model
    refs = ([str(model_dir), str(tiny_model_dir("llama", seed=7))]
            if "ref_extra_chosen_logps" in spec.inputs else None)
    cfg = TrainConfig(model=str(model_dir), data=str(data_for(name, spec.shape, files)), objective=name,
                      output=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), batch_size=4,
                      lr=1e-2, max_steps=2, progress=False, objective_args=EXTRA.get(name, {}),
                      ref_model=refs)
    result = train(cfg)
    assert result.steps == 2
    assert math.isfinite(result.final_metrics["loss"])
    expected = "none" if not spec.needs_reference else ("model" if needs_token_kl(spec) else "cache")
    assert result.reference == expected
    before = AutoModelForCausalLM.from_pretrained(model_dir).get_output_embeddings().weight
    after = AutoModelForCausalLM.from_pretrained(result.output_dir / "model").get_output_embeddings().weight
    assert not torch.equal(before, after), f"{name} did not change the model"


def test_unpaired_data_for_a_pairwise_objective_fails_at_once(tiny_model_dir, unpaired_file, tmp_path):
    cfg = TrainConfig(model=str(tiny_model_dir("llama")), data=str(unpaired_file), objective="sigmoid",
                      output=str(tmp_path / "r"), progress=False)
    with pytest.raises(ValueError, match="pairwise but the data is unpaired"):
        train(cfg)


def test_reference_objective_without_reference_fails(tiny_model_dir, pair_file, tmp_path):
    cfg = TrainConfig(model=str(tiny_model_dir("llama")), data=str(pair_file), objective="sigmoid",
                      reference="none", output=str(tmp_path / "r"), progress=False)
    with pytest.raises(ValueError, match="needs a reference model"):
        train(cfg)


def test_unknown_hyperparameter_fails(tiny_model_dir, pair_file, tmp_path):
    cfg = TrainConfig(model=str(tiny_model_dir("llama")), data=str(pair_file), objective="sigmoid",
                      output=str(tmp_path / "r"), progress=False, objective_args={"gamma": 1.0})
    with pytest.raises(ValueError, match="no hyperparameter"):
        train(cfg)


def test_lora_with_adapter_disabled_reference_and_merge(tiny_model_dir, pair_file, tmp_path):
    model_dir = tiny_model_dir("llama")
    cfg = TrainConfig(model=str(model_dir), data=str(pair_file), objective="sigmoid", lora=True,
                      lora_r=4, merge_lora=True, output=str(tmp_path / "r"), batch_size=4, lr=1e-2,
                      max_steps=2, progress=False)
    result = train(cfg)
    assert result.reference == "adapter-disabled"
    # policy == reference at step 1 (LoRA B starts at zero): DPO loss is ln 2
    import json

    first = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)
    merged = AutoModelForCausalLM.from_pretrained(result.output_dir / "model")
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    changed = [n for (n, p), (_, q) in zip(merged.named_parameters(), base.named_parameters())
               if not torch.equal(p, q)]
    assert changed and all("proj" in n for n in changed)


def test_frozen_reference_model_gives_the_cached_losses(tiny_model_dir, pair_file, tmp_path):
    import json

    model_dir = tiny_model_dir("llama")
    runs = {}
    for kind in ("cache", "model"):
        cfg = TrainConfig(model=str(model_dir), data=str(pair_file), objective="sigmoid", reference=kind,
                          output=str(tmp_path / kind), cache_dir=str(tmp_path / "cache"), batch_size=4,
                          lr=1e-2, max_steps=3, progress=False)
        train(cfg)
        runs[kind] = [json.loads(x)["loss"] for x in (tmp_path / kind / "metrics.jsonl").read_text().splitlines()]
    assert runs["cache"] == pytest.approx(runs["model"], rel=1e-5)


def test_token_kl_objectives_refuse_a_cached_reference_before_loading(pair_file, tmp_path):
    cfg = TrainConfig(model=str(tmp_path / "does-not-exist"), data=str(pair_file), objective="tdpo2",
                      reference="cache", output=str(tmp_path / "r"), progress=False)
    with pytest.raises(ValueError, match="per-token KL"):
        train(cfg)


@pytest.mark.parametrize("name", ["tdpo1", "tdpo2"])
def test_tdpo_step_one_equals_plain_forwards(name, tiny_model_dir, pair_file, tmp_path):
    """Step 1 of TDPO against a different reference model: the loss and KLs the trainer logs
    equal the objective applied to plain per-sequence forwards of both models."""
    import json

    from prefalign.data import load_records, tokenize_records
    from prefalign.engine.forward import plain_sequence_kl, plain_sequence_logps
    from transformers import AutoTokenizer

    policy_dir, ref_dir = tiny_model_dir("llama"), tiny_model_dir("llama", seed=5)
    cfg = TrainConfig(model=str(policy_dir), ref_model=str(ref_dir), data=str(pair_file),
                      objective=name, output=str(tmp_path / "r"), batch_size=16, lr=1e-2,
                      max_steps=2, progress=False)
    result = train(cfg)
    assert result.reference == "model"
    first = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])

    tok = AutoTokenizer.from_pretrained(policy_dir)
    examples, _ = tokenize_records(load_records(pair_file)[0], tok)
    policy = AutoModelForCausalLM.from_pretrained(policy_dir, attn_implementation="sdpa")
    ref = AutoModelForCausalLM.from_pretrained(ref_dir, attn_implementation="sdpa")
    with torch.no_grad():
        pl, rl = plain_sequence_logps(policy, examples), plain_sequence_logps(ref, examples)
        kl = plain_sequence_kl(policy, ref, examples)
    losses = objectives.compute(name, pl[:, 0], pl[:, 1], rl[:, 0], rl[:, 1],
                                chosen_seq_kl=kl[:, 0], rejected_seq_kl=kl[:, 1])
    assert first["loss"] == pytest.approx(losses.mean().item(), rel=1e-4)
    assert first["kl/chosen"] == pytest.approx(kl[:, 0].mean().item(), rel=1e-4)
    assert first["kl/rejected"] == pytest.approx(kl[:, 1].mean().item(), rel=1e-4)
    assert first["loss"] != pytest.approx(math.log(2), abs=1e-3)  # the two models differ


def test_tdpo_against_itself_starts_at_log_two(tiny_model_dir, pair_file, tmp_path):
    """Policy == reference: every log-ratio and every per-token KL is 0, so the loss is ln 2."""
    import json

    cfg = TrainConfig(model=str(tiny_model_dir("llama")), data=str(pair_file), objective="tdpo2",
                      output=str(tmp_path / "r"), batch_size=8, lr=1e-2, max_steps=2,
                      progress=False)
    train(cfg)
    first = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert first["kl/chosen"] == pytest.approx(0.0, abs=1e-6)


def test_tdpo_eval_reuses_the_training_reference(tiny_model_dir, pair_file, tmp_path):
    """TDPO with an eval set: one frozen reference model serves both splits (a second copy
    would double its memory), and the eval metrics include the per-token KL."""
    import json

    from prefalign.train.trainer import Trainer

    cfg = TrainConfig(model=str(tiny_model_dir("llama")), ref_model=str(tiny_model_dir("llama", seed=5)),
                      data=str(pair_file), eval_data=str(pair_file), objective="tdpo1",
                      output=str(tmp_path / "r"), batch_size=8, lr=1e-2, max_steps=2,
                      eval_steps=1, progress=False)
    trainer = Trainer(cfg)
    assert trainer.reference_kind == "model" and trainer.eval_reference is trainer.reference
    trainer.train()
    first = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["eval/kl/chosen"] > 0 and math.isfinite(first["eval/loss"])


@pytest.mark.parametrize("name,has_accuracy", [("sft", False), ("sigmoid", True)])
def test_the_progress_bar_shows_what_the_objective_has(name, has_accuracy, tiny_model_dir, files,
                                                       tmp_path, capsys):
    """SFT's bar printed acc=nan for every step: it has no reward accuracy."""
    spec = objectives.get(name)
    cfg = TrainConfig(model=str(tiny_model_dir("llama")), data=str(data_for(name, spec.shape, files)),
                      objective=name, output=str(tmp_path / "run"), cache_dir=str(tmp_path / "c"),
                      batch_size=4, lr=1e-2, max_steps=2, progress=True)
    train(cfg)
    bar = capsys.readouterr().err
    assert "loss=" in bar and "tok/s=" in bar and "nan" not in bar
    assert ("acc=" in bar) is has_accuracy
