"""Wall-clock seconds per phase of a training run, so a user (and a benchmark) can see where
the time went: reading and tokenizing the data, loading models, the reference pass, the
optimizer steps, evaluation, saving."""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch


class PhaseTimes:
    def __init__(self):
        self.seconds: dict[str, float] = {}

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
