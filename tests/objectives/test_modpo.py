"""MODPO: a hand value on an asymmetric pair and its DPO case (w0 = 1, no other dimension);
its formula on every case is in test_values_asymmetric.py."""

import pytest
import torch

from prefalign.objectives import compute

PW, PL = torch.tensor([-1.0, -2.0, -3.5]), torch.tensor([-1.5, -1.0, -4.0])
RW, RL = torch.tensor([-1.2, -2.5, -2.0]), torch.tensor([-1.1, -1.3, -3.5])


def test_modpo_by_hand_and_its_dpo_case():
    import math

    # pair 0: h = 0.2 + 0.4 = 0.6; (0.1·0.6 − 0.5·0.5) / 0.5 = −0.38
    got = compute("modpo", PW, PL, RW, RL, margin=torch.tensor([0.5, -1.0, 0.0]))
    assert float(got[0]) == pytest.approx(math.log1p(math.exp(0.38)), abs=1e-6)
    assert torch.allclose(compute("modpo", PW, PL, RW, RL, margin=torch.tensor([2.0, 1.0, 3.0]),
                                  modpo_w0=1.0, modpo_other_weight=0.0),
                          compute("sigmoid", PW, PL, RW, RL))


def test_modpo_refuses_to_take_the_ranking_scores_as_the_other_dimensions(tiny_model_dir,
                                                                          tmp_path):
    import json

    from prefalign.train import TrainConfig, train

    data = tmp_path / "scored.jsonl"
    data.write_text(json.dumps({"prompt": "1+1=", "chosen": "2", "rejected": "3",
                                "score_chosen": 1.0, "score_rejected": 0.0}) + "\n")
    with pytest.raises(ValueError, match=r"scored.jsonl, line 1, field 'margin'.*other "
                                         r"preference dimensions"):
        train(TrainConfig(model=str(tiny_model_dir("llama")), data=str(data), objective="modpo",
                          output=str(tmp_path / "r"), progress=False, max_steps=1))
