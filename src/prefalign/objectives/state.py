"""Small stateful helpers a trainer holds across steps for objectives that need running statistics.

The objective functions themselves stay pure: the trainer updates a :class:`RunningMoments`
and passes its values in (BCO's ``delta``; β-DPO's ``gap_mean`` / ``gap_std``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class RunningMoments:
    """Running mean and standard deviation of a stream of values.

    * ``momentum=None`` (default): exact mean/std of everything seen so far (batches merged
      with Chan's parallel formula), like TRL's ``RunningMoments`` used for BCO's δ.
    * ``momentum=m``: exponential moving averages of each batch's mean and std,
      ``stat ← m·stat + (1−m)·batch_stat``, initialized from the first batch (β-DPO uses m = 0.9).

    In distributed training, gather the values from every process before :meth:`update`.
    ``state_dict`` / ``load_state_dict`` make it checkpointable.

    Example::

        delta = RunningMoments()
        delta.update(beta * (policy_logps - ref_logps).detach())
        losses = compute_unpaired("bco", policy_logps, labels, ref_logps, delta=delta.mean)
    """

    def __init__(self, momentum: float | None = None) -> None:
        if momentum is not None and not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1) or None, got {momentum}")
        self.momentum = momentum
        self.count = 0
        self._mean = 0.0
        self._var = 0.0  # population variance of all values seen (exact mode only)
        self._std = 0.0

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def std(self) -> float:
        return self._std

    def update(self, values: Tensor) -> "RunningMoments":
        """Fold in a batch of values (any shape; detached, converted to float64)."""
        x = torch.as_tensor(values).detach().double().flatten()
        n = x.numel()
        if n == 0:
            return self
        b_mean = float(x.mean())
        b_var = float(x.var(unbiased=False))
        if self.momentum is not None:
            b_std = math.sqrt(b_var)
            if self.count == 0:
                self._mean, self._std = b_mean, b_std
            else:
                m = self.momentum
                self._mean = m * self._mean + (1.0 - m) * b_mean
                self._std = m * self._std + (1.0 - m) * b_std
            self.count += n
            return self
        total = self.count + n
        d = b_mean - self._mean
        self._var = (self._var * self.count + b_var * n + d * d * self.count * n / total) / total
        self._mean += d * n / total
        self._std = math.sqrt(self._var)
        self.count = total
        return self

    def state_dict(self) -> dict:
        return {"momentum": self.momentum, "count": self.count, "mean": self._mean, "var": self._var, "std": self._std}

    def load_state_dict(self, state: dict) -> None:
        self.momentum = state["momentum"]
        self.count, self._mean, self._var, self._std = state["count"], state["mean"], state["var"], state["std"]
