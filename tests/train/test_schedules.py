"""The learning-rate schedules give transformers' multipliers, step by step."""

import pytest
import torch

from prefalign.train.schedules import lr_multiplier, make_scheduler


@pytest.mark.parametrize("kind,theirs", [("linear", "linear"), ("cosine", "cosine"),
                                         ("constant", "constant_with_warmup")])
@pytest.mark.parametrize("warmup,total", [(0, 10), (3, 10), (10, 10), (4, 1)])
def test_schedules_equal_transformers(kind, theirs, warmup, total):
    from transformers import get_scheduler

    def lrs(make):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
        sched = make(opt)
        out = []
        for _ in range(total + 2):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    ours = lrs(lambda o: make_scheduler(o, kind, warmup=warmup, total=total))
    ref = lrs(lambda o: get_scheduler(theirs, o, num_warmup_steps=warmup,
                                      num_training_steps=total))
    assert ours == pytest.approx(ref, abs=1e-12)


def test_hand_values_and_unknown_kind():
    assert lr_multiplier(0, kind="linear", warmup=4, total=12) == 0.0
    assert lr_multiplier(2, kind="linear", warmup=4, total=12) == 0.5
    assert lr_multiplier(8, kind="linear", warmup=4, total=12) == 0.5
    assert lr_multiplier(8, kind="cosine", warmup=4, total=12) == pytest.approx(0.5)
    assert lr_multiplier(12, kind="cosine", warmup=4, total=12) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="not one of"):
        make_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1), "step",
                       warmup=0, total=1)
