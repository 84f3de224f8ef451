"""`curriculum` (Curry-DPO): pairs of the best with each worse response, easy (large gap) to
hard, with a level column; and `prefalign train --order curriculum` training them in that order."""

import json

import pytest

from prefalign.generation.types import PromptItem
from prefalign.synth.pairs import PairOptions, build_records
from prefalign.train import TrainConfig, Trainer
from prefalign.train.batches import BatchPlan


def test_pairs_by_gap_with_their_levels():
    item = PromptItem(0, "p")
    # best r0 (1.0): gaps r1 1.0, r3 0.7, r2 0.4; r4 ties the best and makes no pair
    recs, dropped = build_records(item, ["r0", "r1", "r2", "r3", "r4"],
                                  [1.0, 0.0, 0.6, 0.3, 1.0], PairOptions("curriculum"))
    assert [(r.chosen, r.rejected, r.meta["curriculum"]) for r in recs] == [
        ("r0", "r1", 0), ("r0", "r3", 1), ("r0", "r2", 2)]
    assert [r.margin for r in recs] == pytest.approx([1.0, 0.7, 0.4])
    assert dropped["tie"] == 1
    recs, dropped = build_records(item, ["r0", "r1", "r2", "r3"], [1.0, 0.0, 0.6, 0.3],
                                  PairOptions("curriculum:2"))
    assert [r.rejected for r in recs] == ["r1", "r3"]
    assert dropped["beyond_curriculum_pairs"] == 1


def test_a_curriculum_epoch_goes_from_level_to_level_shuffled_within():
    levels = (2, 0, 1, 0, 2, 1, 0)
    plan = BatchPlan(7, 1, 1, 1, seed=3, levels=levels)
    for epoch in (0, 1):
        order = plan.epoch_order(epoch)
        assert sorted(order) == list(range(7))
        assert [levels[i] for i in order] == sorted(levels)
    within = {tuple(plan.epoch_order(e)[:3]) for e in range(6)}
    assert len(within) > 1, "level 0 is shuffled from epoch to epoch"


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_train_order_curriculum_reads_the_column_and_refuses_a_file_without(
        tiny_model_dir, tmp_path):
    rows = [{"prompt": f"{i}+1=", "chosen": str(i + 1), "rejected": str(i + 2),
             "curriculum": i % 3} for i in range(9)]
    data = _write(tmp_path / "c.jsonl", rows)
    cfg = TrainConfig(model=str(tiny_model_dir("llama")), data=str(data), order="curriculum",
                      output=str(tmp_path / "out"), batch_size=3, max_steps=3, progress=False,
                      cache_dir=str(tmp_path / "cache"))
    trainer = Trainer(cfg)
    try:
        steps = [trainer.plan.step_examples(s) for s in range(3)]
        assert [{rows[i]["curriculum"] for i in step} for step in steps] == [{0}, {1}, {2}]
    finally:
        trainer.close()
    plain = _write(tmp_path / "p.jsonl", [{k: v for k, v in r.items() if k != "curriculum"}
                                          for r in rows])
    with pytest.raises(ValueError, match=r"p.jsonl, line 1: --order curriculum needs a "
                                         r"curriculum column"):
        Trainer(TrainConfig(model=str(tiny_model_dir("llama")), data=str(plain),
                            order="curriculum", output=str(tmp_path / "out2"), progress=False,
                            cache_dir=str(tmp_path / "cache")))
