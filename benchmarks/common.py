"""What every benchmark script shares: the commit it measured, the device's name, timing."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """HEAD of the checkout; on a device copy (no .git) $GIT_COMMIT or the file .gpu/COMMIT written before the run."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    except Exception:
        marker = ROOT / ".gpu" / "COMMIT"
        return marker.read_text().strip() if marker.is_file() else "unknown"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def sync(device: torch.device | None = None) -> None:
    if torch.cuda.is_available() and (device is None or device.type == "cuda"):
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> dict:
    """Median / mean / min seconds of `fn()` over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"median_s": times[len(times) // 2], "mean_s": sum(times) / len(times), "min_s": times[0], "repeats": repeats}


def time_loop(step: Callable[[], object], device: torch.device, warmup: int, n: int) -> tuple[float, float, object]:
    """Throughput timing under inference_mode: `warmup` calls, then `n` calls timed together with one sync.

    Returns (warm-up seconds, timed seconds, the last output). Peak memory is reset after warm-up."""
    with torch.inference_mode():
        t_warm = time.perf_counter()
        for _ in range(warmup):
            step()
        sync(device)
        warm_s = time.perf_counter() - t_warm
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        out = None
        for _ in range(n):
            out = step()
        sync(device)
    return warm_s, time.perf_counter() - t0, out

