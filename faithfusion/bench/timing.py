"""How long does a call take? Wall-clock timing after warm-up, synchronised on CUDA, and the peak memory of a block.

On CUDA the clock is read only after `torch.cuda.synchronize()`, so a call is charged with the kernels it queued.
The clock is a parameter so that tests can drive the timing with a fake one.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import torch

Clock = Callable[[], float]


def synchronizer(device: torch.device | str) -> Callable[[], None]:
    """A function that waits for the queued work of `device` (a no-op off CUDA)."""
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@dataclass
class Timing:
    """Seconds per call over `repeats` timed calls (each synchronised), after `warmup` untimed calls."""

    median_s: float
    mean_s: float
    min_s: float
    max_s: float
    repeats: int
    warmup: int

    @property
    def per_second(self) -> float:
        """Calls per second at the median."""
        return 1.0 / self.median_s if self.median_s > 0 else float("inf")

    def to_dict(self) -> dict:
        return {**asdict(self), "per_second": self.per_second}


def time_calls(fn: Callable[[], object], device: torch.device | str, *, warmup: int = 1, repeats: int = 5,
               clock: Clock = time.perf_counter) -> Timing:
    """Call `fn` `warmup` times untimed, then `repeats` times, each timed alone between synchronisations."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be at least 0, got {warmup}")
    sync = synchronizer(device)
    for _ in range(warmup):
        fn()
    sync()
    seconds = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        sync()
        seconds.append(clock() - t0)
    return Timing(statistics.median(seconds), statistics.fmean(seconds), min(seconds), max(seconds), repeats, warmup)


def time_block(fn: Callable[[], object], device: torch.device | str, *, warmup: int = 0, calls: int = 1,
               clock: Clock = time.perf_counter) -> float:
    """Seconds of `calls` back-to-back calls of `fn` with one synchronisation at the end (throughput: queued work
    overlaps as it does in a loop), after `warmup` untimed calls."""
    if calls < 1:
        raise ValueError(f"calls must be at least 1, got {calls}")
    sync = synchronizer(device)
    for _ in range(warmup):
        fn()
    sync()
    t0 = clock()
    for _ in range(calls):
        fn()
    sync()
    return clock() - t0


def block_sizes(calls: int, blocks: int) -> list[int]:
    """`calls` split into `blocks` consecutive blocks as evenly as possible (the first ones one larger)."""
    return [calls // blocks + (1 if k < calls % blocks else 0) for k in range(blocks)]


def time_blocks(fn: Callable[[], object], device: torch.device | str, *, warmup: int = 0, calls: int = 1,
                blocks: int = 5, clock: Clock = time.perf_counter) -> list[float]:
    """Seconds of each of `blocks` consecutive blocks of back-to-back calls (`calls` in all, split as evenly as
    possible), each block synchronised only at its end, after `warmup` untimed calls. The median block resists
    bursts of other work on a shared machine better than the total does."""
    if calls < 1 or blocks < 1:
        raise ValueError(f"calls and blocks must be at least 1, got {calls} and {blocks}")
    blocks = min(blocks, calls)
    sizes = block_sizes(calls, blocks)
    out = [time_block(fn, device, warmup=warmup, calls=sizes[0], clock=clock)]
    out += [time_block(fn, device, calls=n, clock=clock) for n in sizes[1:]]
    return out


@dataclass
class PeakMemory:
    """The peak allocated memory of a `with peak_memory(device)` block, and what was allocated when it began,
    in GiB (None off CUDA)."""

    gib: float | None = None
    start_gib: float | None = None

    @property
    def above_start_gib(self) -> float | None:
        """What the block itself added at its peak."""
        return None if self.gib is None or self.start_gib is None else self.gib - self.start_gib


@contextmanager
def peak_memory(device: torch.device | str) -> Iterator[PeakMemory]:
    """Measure the peak CUDA memory allocated inside the block (the CPU has no such counter: None)."""
    device = torch.device(device)
    result = PeakMemory()
    if device.type != "cuda":
        yield result
        return
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    result.start_gib = torch.cuda.memory_allocated(device) / 2**30
    try:
        yield result
    finally:
        torch.cuda.synchronize(device)
        result.gib = torch.cuda.max_memory_allocated(device) / 2**30


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator
