"""Running statistics objectives need across steps, and the state a trainer keeps for them.

The objective functions stay pure: a registry entry declares its running statistics
(:class:`RunningStat`: which detached values of a batch feed it, and which batch fields its
moments fill), and :class:`ObjectiveState` (the trainer holds one) updates them every
micro-batch, reduced across processes, before the loss, then fills the batch: BCO's δ (the
running mean of the rewards), BCO-pair's δ with ``reward_shift='running_mean'``, β-DPO's
threshold M₀ and spread σ (EMAs of the gap's batch mean and std). ``state_dict()`` is plain
JSON (floats and ints), saved with each checkpoint and restored on resume.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

Reduce = Callable[[Tensor], Tensor]  # sums a float64 tensor over the processes


class RunningMoments:
    """Running mean and standard deviation of a stream of values.

    * ``momentum=None`` (default): exact mean/std of everything seen so far (batches merged
      with Chan's parallel formula), like TRL's ``RunningMoments`` used for BCO's δ.
    * ``momentum=m``: exponential moving averages of each batch's mean and std,
      ``stat ← m·stat + (1−m)·batch_stat``, from 0 (``ema_from_zero=True``, as β-DPO's authors'
      code, with m = 0.9) or initialized from the first batch; ``unbiased``: each batch's std
      with Bessel's correction (n − 1; torch's default, the authors' code), else the population
      std.

    :meth:`update` folds in a batch seen by this process; :meth:`update_global` folds in the
    batch of all processes together (``reduce`` sums over them). ``state_dict`` /
    ``load_state_dict`` make it checkpointable (plain JSON values).

    Example::

        delta = RunningMoments()
        delta.update(beta * (policy_logps - ref_logps).detach())
        losses = compute_unpaired("bco", policy_logps, labels, ref_logps, delta=delta.mean)
    """

    def __init__(self, momentum: float | None = None, *, ema_from_zero: bool = False,
                 unbiased: bool = False) -> None:
        if momentum is not None and not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1) or None, got {momentum}")
        if (ema_from_zero or unbiased) and momentum is None:
            raise ValueError("ema_from_zero and unbiased apply to the moving averages (momentum)")
        self.momentum = momentum
        self.ema_from_zero, self.unbiased = ema_from_zero, unbiased
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
        if x.numel() == 0:
            return self
        return self._merge(x.numel(), float(x.mean()), float(x.var(unbiased=False)))

    def update_global(self, values: Tensor, reduce: Reduce | None = None) -> "RunningMoments":
        """Fold in the batch that every process holds a part of (``values`` is this process's
        part, possibly empty): its count, mean and variance are summed over the processes with
        ``reduce`` (two passes: the mean, then the squared deviations from it), so N processes
        update exactly as one process holding the whole batch. Every process must call it."""
        x = torch.as_tensor(values).detach().double().flatten()
        reduce = reduce or (lambda t: t)
        totals = reduce(torch.stack([x.new_tensor(float(x.numel())), x.sum()]))
        n = int(round(float(totals[0])))
        mean = float(totals[1]) / n if n else 0.0
        squares = reduce(((x - mean) ** 2).sum().reshape(1))
        if n == 0:
            return self
        return self._merge(n, mean, float(squares[0]) / n)

    def _merge(self, n: int, b_mean: float, b_var: float) -> "RunningMoments":
        if self.momentum is not None:
            if self.unbiased:  # population variance -> sample variance (one value: no spread)
                b_var = b_var * n / (n - 1) if n > 1 else 0.0
            b_std = math.sqrt(max(b_var, 0.0))
            if self.count == 0 and not self.ema_from_zero:
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
        return {"momentum": self.momentum, "count": self.count, "mean": self._mean, "var": self._var,
                "std": self._std, "ema_from_zero": self.ema_from_zero, "unbiased": self.unbiased}

    def load_state_dict(self, state: dict) -> None:
        self.momentum = state["momentum"]
        # checkpoints from before these options kept the first-batch, population form
        self.ema_from_zero = bool(state.get("ema_from_zero", False))
        self.unbiased = bool(state.get("unbiased", False))
        self.count, self._mean, self._var, self._std = state["count"], state["mean"], state["var"], state["std"]


@dataclass(frozen=True)
class RunningStat:
    """A running statistic an objective declares: ``values(batch, hps)`` gives this batch's
    detached values (after the modifiers), ``fills(moments)`` the batch fields set from the
    moments, ``active(hps)`` whether these hyperparameters use it."""

    name: str
    description: str
    values: Callable[[Any, dict], Tensor]
    fills: Callable[[RunningMoments], dict[str, float]]
    momentum: float | None = None
    active: Callable[[dict], bool] = lambda hps: True
    ema_from_zero: bool = False  # see RunningMoments
    unbiased: bool = False

    def moments(self) -> RunningMoments:
        return RunningMoments(self.momentum, ema_from_zero=self.ema_from_zero,
                              unbiased=self.unbiased)


class ObjectiveState:
    """The running statistics of one objective over a training run.

    Each micro-batch, :meth:`observe` updates every active statistic with the batch's values
    (all processes together) and returns the batch with the statistics' fields filled, so the
    loss uses moments that include this batch (as BCO's and β-DPO's authors and TRL do).
    :meth:`fill` fills without updating (evaluation). Fields already set on the batch are kept.
    Before any update a statistic fills nothing, and the objective uses the batch's own.
    """

    def __init__(self, entry, hyperparameters: dict[str, Any] | None = None) -> None:
        self.entry = entry
        self.hps = entry.resolve(hyperparameters)
        self.stats = entry.running_stats(self.hps)
        self.moments = {s.name: s.moments() for s in self.stats}

    @property
    def active(self) -> bool:
        return bool(self.stats)

    def observe(self, batch, reduce: Reduce | None = None):
        """Update with ``batch`` (None: this process has no examples in this micro-batch but
        takes part in the reduction), then return it filled."""
        for s in self.stats:
            values = torch.zeros(0, dtype=torch.float64) if batch is None else s.values(batch, self.hps)
            self.moments[s.name].update_global(values, reduce)
        return None if batch is None else self.fill(batch)

    def fill(self, batch):
        changes: dict[str, Any] = {}
        for s in self.stats:
            moments = self.moments[s.name]
            if moments.count == 0:
                continue
            for key, value in s.fills(moments).items():
                if getattr(batch, key) is None:
                    like = _like(batch)
                    changes[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
        return dataclasses.replace(batch, **changes) if changes else batch

    def state_dict(self) -> dict:
        """Plain JSON: ``{statistic name: RunningMoments.state_dict()}``."""
        return {name: m.state_dict() for name, m in self.moments.items()}

    def load_state_dict(self, state: dict) -> None:
        missing = sorted(set(self.moments) - set(state or {}))
        if missing:
            raise ValueError(f"objective {self.entry.name!r}: the saved state has no running "
                             f"statistic {', '.join(missing)}")
        for name, m in self.moments.items():
            m.load_state_dict(state[name])


def _like(batch) -> Tensor:
    return batch.policy_chosen_logps if hasattr(batch, "policy_chosen_logps") else batch.policy_logps
