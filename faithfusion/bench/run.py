"""`run_bench`: every measurement of a `BenchConfig` on one scene, written to one JSON as it goes.

The JSON: `benchmark`, `command`, `commit`, `device` (name, torch, threads, ...), `gsplat`, `config`, `scene`,
`seconds` (wall per measurement), then one section per measurement run (`training`, `render`, `eig`, `fixers`,
`fusion`) and `skipped` (measurement -> why). It is rewritten after every measurement.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from faithfusion.bench.config import BenchConfig, check_bench_config
from faithfusion.bench.info import device_info, git_commit, gsplat_missing, gsplat_version, load_average
from faithfusion.bench.scene import bench_scene, fusion_config, recon_config
from faithfusion.utils.device import resolve_device
from faithfusion.utils.jsonio import save_json_atomic, to_plain


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed (`faithfusion bench ...`), for the JSON."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["faithfusion", *args]) if args and args[0] == "bench" else " ".join(["faithfusion bench", *args])


def run_bench(cfg: BenchConfig, command: str | None = None, say: Callable[[str], None] = print) -> dict:
    """Run the measurements of `cfg`; returns the result written to cfg.out."""
    check_bench_config(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    result: dict = {
        "benchmark": "faithfusion bench", "command": command or command_line(), "commit": git_commit(),
        "device": device_info(device), "gsplat": {"version": gsplat_version(), "unavailable": gsplat_missing(device)},
        "config": to_plain(asdict(cfg)), "seconds": {}, "skipped": {m: "--skip" for m in cfg.skip},
    }
    if not cfg.fusion:
        result["skipped"]["fusion"] = "optional: pass --fusion"

    def save() -> None:
        save_json_atomic(out, result)

    def measure(name: str, fn: Callable[[], dict]) -> None:
        if name in cfg.skip:
            return
        t0 = time.perf_counter()
        result[name] = fn()
        result["seconds"][name] = time.perf_counter() - t0
        say(f"bench {name}: {result['seconds'][name]:.1f} s")
        save()

    t0 = time.perf_counter()
    with bench_scene(cfg) as bs:
        result["scene"] = bs.source
        result["seconds"]["scene"] = time.perf_counter() - t0
        save()
        if not {"training", "render", "eig"} <= set(cfg.skip):
            from faithfusion.bench.eig import bench_eig
            from faithfusion.bench.render import bench_render
            from faithfusion.bench.training import bench_training
            from faithfusion.train.trainer import Trainer

            trainer = Trainer(bs.scene, recon_config(cfg, bs.data, bs.camera_ids, device), device)
            measure("training", lambda: bench_training(trainer, cfg.warmup_steps, cfg.train_steps))
            if "training" in cfg.skip:  # the render and EIG measure a model trained for a while
                for _ in range(cfg.warmup_steps):
                    trainer.train_step()
            measure("render", lambda: bench_render(trainer.model, trainer.real.views[0].camera, trainer.cfg.backend,
                                                   device, cfg.warmup, cfg.repeats))
            measure("eig", lambda: bench_eig(trainer, cfg.warmup, cfg.repeats, cfg.h_train_repeats))
            del trainer
            if device.type == "cuda":
                torch.cuda.empty_cache()
        from faithfusion.bench.fixers import bench_fixers

        measure("fixers", lambda: bench_fixers(cfg.fixers, device, cfg.fixer_width, cfg.fixer_height, cfg.fixer_frames,
                                               cfg.fixer_warmup, cfg.fixer_repeats))
        if cfg.fusion:
            from faithfusion.bench.fusion import bench_fusion

            base = fusion_config(cfg, bs.data, bs.camera_ids, device)

            def partial(figures: dict) -> None:
                result["fusion"] = figures
                save()

            measure("fusion", lambda: bench_fusion(base, cfg.fusion_methods, bs.work / "fusion", on_method=partial))
    result["seconds"]["total"] = time.perf_counter() - t0
    result["device"]["load_average_at_end"] = load_average()
    save()
    say(f"wrote {out}")
    return result
