"""Learning-rate schedules with linear warmup: constant, linear decay, cosine decay.

The same multipliers as transformers' ``get_scheduler`` (constant_with_warmup, linear, cosine
with half a cycle), written here because importing ``transformers.optimization`` pulls in
``transformers.trainer_utils``, PEFT and, where installed, bitsandbytes and torch.compile:
seconds of start-up for ten lines of arithmetic.
"""

from __future__ import annotations

import math
from functools import partial

from torch.optim.lr_scheduler import LambdaLR

SCHEDULES = ("linear", "cosine", "constant")


def lr_multiplier(step: int, *, kind: str, warmup: int, total: int) -> float:
    """The factor on the base learning rate before optimizer step ``step`` (0-based)."""
    if step < warmup:
        return step / max(1, warmup)
    if kind == "constant":
        return 1.0
    span = max(1, total - warmup)
    if kind == "linear":
        return max(0.0, (total - step) / span)
    progress = (step - warmup) / span
    if kind == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    raise ValueError(f"scheduler {kind!r} is not one of {', '.join(SCHEDULES)}")


def make_scheduler(optimizer, kind: str, *, warmup: int, total: int) -> LambdaLR:
    if kind not in SCHEDULES:
        raise ValueError(f"scheduler {kind!r} is not one of {', '.join(SCHEDULES)}")
    return LambdaLR(optimizer, partial(lr_multiplier, kind=kind, warmup=warmup, total=total))
