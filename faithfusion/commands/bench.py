"""`faithfusion bench`: training, render, EIG, fixers (and with --fusion every fusion method) timed against plain
references on one scene; one JSON naming the device, the commit and the command (faithfusion/bench/)."""

from __future__ import annotations

from faithfusion.bench.config import BenchConfig
from faithfusion.bench.run import run_bench

__all__ = ["BenchConfig", "run_bench_command"]


def run_bench_command(cfg: BenchConfig) -> dict:
    return run_bench(cfg)
