"""(e) How long does each fusion method take end to end against plain 3DGS with the same steps?

Each preset runs as `faithfusion demo` runs it (`fuse_config` + `run_method`, the shipped fixers): training in
rounds, the final checkpoint, the PLY and the held-out evaluation. Wall seconds of the whole run and the trainer's
own seconds are both reported, each as a ratio to 3DGS. A short untimed 3DGS run comes first, so that one-time
costs of the process (kernel builds, lazy imports) fall on none of the timed methods.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from faithfusion.bench.timing import ratio
from faithfusion.train.config import ReconConfig

WARMUP_STEPS = 20
"""Steps of the untimed 3dgs run before the timed ones."""


def bench_fusion(base: ReconConfig, methods: tuple[str, ...], work: Path,
                 on_method: Callable[[dict], None] | None = None) -> dict:
    """Run every preset of `methods` on `base` (its data, steps and device) in `work/NAME`; wall and train seconds.

    `on_method(figures so far)` runs after each method (a caller saves them, so a killed run keeps them)."""
    from faithfusion.fusion.config import fuse_config
    from faithfusion.fusion.presets import preset
    from faithfusion.fusion.runner import run_method

    t0 = time.perf_counter()  # one untimed short 3dgs run first: the first run in a process pays one-time costs
    run_method("3dgs", fuse_config(preset("3dgs").config, replace(base, out=Path(work) / "warmup", overwrite=True,
                                                                  steps=min(base.steps, WARMUP_STEPS))))
    warmup = time.perf_counter() - t0
    rows: dict[str, dict] = {}
    for name in methods:
        p = preset(name)
        cfg = fuse_config(p.config, replace(base, out=Path(work) / name, overwrite=True))
        t0 = time.perf_counter()
        run = run_method(name, cfg)
        wall = time.perf_counter() - t0
        rows[name] = {"wall_seconds": wall, "train_seconds": float(run.trainer.train_seconds),
                      "steps": run.trainer.step, "num_gaussians": len(run.trainer.model),
                      "rounds": int(run.metrics.get("fusion", {}).get("completed_rounds", 0)),
                      "test": run.metrics.get("test", {})}
        if on_method is not None:
            on_method({**with_ratios(base.steps, rows), "warmup_seconds": warmup})
    return {**with_ratios(base.steps, rows), "warmup_seconds": warmup}


def with_ratios(steps: int, rows: dict[str, dict]) -> dict:
    """The figures of (e): every method's row with its ratios to 3dgs (when 3dgs ran)."""
    base_row = rows.get("3dgs")
    for name, row in rows.items():
        if base_row is not None:
            row["wall_over_3dgs"] = ratio(row["wall_seconds"], base_row["wall_seconds"])
            row["train_seconds_over_3dgs"] = ratio(row["train_seconds"], base_row["train_seconds"])
    out: dict = {"steps": steps, "methods": rows}
    if base_row is None:
        out["note"] = "3dgs was not among the methods: no ratios"
    return out
