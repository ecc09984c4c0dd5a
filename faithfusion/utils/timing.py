"""Where does a loop spend its wall time? A timer that adds up seconds per named stage.

On CUDA the clock is read only after `torch.cuda.synchronize()`, so a stage is charged with the kernels it
queued rather than with whichever later stage first waits for them. Timing changes no result: it reads the
clock and, on CUDA, waits for queued work; it draws no random numbers and moves no tensors.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

import torch


class StageTimer:
    """Accumulated wall seconds per stage name; `take()` returns them and starts again from zero.

    Stages are meant to be disjoint: a stage timed inside another is counted in both."""

    def __init__(self, device: torch.device | str | None = None, enabled: bool = True) -> None:
        self.cuda = device is not None and torch.device(device).type == "cuda"
        self.enabled = enabled
        self.seconds: dict[str, float] = {}

    def now(self) -> float:
        """The clock, read after the queued CUDA work is done (when timing on CUDA)."""
        if self.enabled and self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Charge the wall time of the `with` block to `name`."""
        if not self.enabled:
            yield
            return
        t0 = self.now()
        try:
            yield
        finally:
            self.add(name, self.now() - t0)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def take(self) -> dict[str, float]:
        """The seconds per stage since the last `take()` (and reset)."""
        out, self.seconds = self.seconds, {}
        return out


NO_TIMER = StageTimer(enabled=False)
"""A timer that times nothing: the default of code that may be timed."""
