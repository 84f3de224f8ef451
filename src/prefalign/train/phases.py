"""Wall-clock seconds per phase of a training run, so a user (and a benchmark) can see where
the time went: reading and tokenizing the data, loading models, the reference pass, the
optimizer steps, evaluation, saving; and how many graphs torch.compile built meanwhile
(FlexAttention's kernel compiles once per new shape: a count that grows with the batches says
the shapes are not bucketed)."""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch


def compiled_graphs() -> int:
    """Graphs torch.compile has built in this process so far (each compile or recompile)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"].get("unique_graphs", 0))


class PhaseTimes:
    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._graphs_at_start = compiled_graphs()

    def compiles(self) -> int:
        """Graphs compiled since this run started."""
        return compiled_graphs() - self._graphs_at_start

    @contextmanager
    def __call__(self, name: str):
        """Time the block under ``name`` (added up when a phase runs several times). GPU work is
        waited for at the end, so queued kernels are counted in the phase that queued them."""
        start = time.perf_counter()
        try:
            yield
        finally:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def rounded(self) -> dict[str, float]:
        return {name: round(s, 3) for name, s in self.seconds.items()}
