"""Which examples go into which micro-batch, on which process, at which step.

The order is a pure function of (seed, epoch) (and, for ``--order curriculum``, the examples'
levels), so a resumed run sees exactly the batches an
uninterrupted run would have seen, and N processes together see exactly the global batches one
process would (each takes its slice of every micro-batch).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BatchPlan:
    num_examples: int
    batch_size: int  # per process, per micro-batch
    grad_accum: int
    world_size: int
    seed: int
    drop_last: bool = False
    # each example's curriculum level: an epoch goes through the levels in ascending order,
    # each level shuffled (None: the whole epoch shuffled)
    levels: tuple[int, ...] | None = None

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.grad_accum * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        if self.drop_last:
            return max(1, self.num_examples // self.global_batch)
        return max(1, math.ceil(self.num_examples / self.global_batch))

    def epoch_order(self, epoch: int) -> list[int]:
        return list(_epoch_order(self.num_examples, self.seed, epoch, self.levels))

    def step_examples(self, step: int) -> list[int]:
        """Example indices of optimizer step ``step`` (0-based), all processes together."""
        epoch, within = divmod(step, self.steps_per_epoch)
        order = _epoch_order(self.num_examples, self.seed, epoch, self.levels)
        return list(order[within * self.global_batch:(within + 1) * self.global_batch])

    def step(self, step: int, rank: int) -> "StepPlan":
        """Optimizer step ``step``: its examples (all processes) and this process's
        micro-batches, ``grad_accum`` lists (some may be empty at the end of an epoch)."""
        chosen = self.step_examples(step)
        per_micro = self.batch_size * self.world_size
        micro = [chosen[m * per_micro:(m + 1) * per_micro][rank::self.world_size]
                 for m in range(self.grad_accum)]
        return StepPlan(chosen, micro)

    def micro_batches(self, step: int, rank: int) -> list[list[int]]:
        """This process's micro-batches for ``step`` (see :meth:`step`)."""
        return self.step(step, rank).micro


@dataclass(frozen=True)
class StepPlan:
    examples: list[int]  # the step's examples, every process's
    micro: list[list[int]]  # this process's micro-batches


@functools.lru_cache(maxsize=2)
def _epoch_order(num_examples: int, seed: int, epoch: int,
                 levels: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The examples' order in ``epoch``: one permutation per epoch, computed once (a step
    reads its slice; a resumed run recomputes the same one). With ``levels``, the permutation
    sorted by level (stable: shuffled within a level)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(num_examples, generator=g).tolist()
    if levels is not None:
        order.sort(key=lambda i: levels[i])
    return tuple(order)


def by_tokens(indices: list[int], lengths: list[int], budget: int) -> list[list[int]]:
    """Regroup a process's examples of one step into micro-batches of at most ``budget``
    tokens each (an example longer than the budget is a micro-batch of its own), by the same
    first-fit-decreasing rule that packs rows. The step's examples, and so its loss and
    gradient, do not change; only how many go through the model at once."""
    from prefalign.engine.layout import plan_rows

    if not indices:
        return []
    groups = plan_rows([lengths[i] for i in indices], budget)
    return [[indices[j] for j in group] for group in groups]
