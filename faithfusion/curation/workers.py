"""Scenes curated in parallel, each worker a spawned process with its own share of the scenes."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from faithfusion.curation.config import CurateConfig
from faithfusion.curation.jobs import SceneJob, scene_jobs
from faithfusion.curation.scene_samples import curate_scenes, is_complete


def _worker(cfg: CurateConfig) -> None:
    curate_scenes(cfg, scene_jobs(cfg), time.perf_counter())


def curate_in_workers(cfg: CurateConfig, jobs: list[SceneJob]) -> None:
    """Curate the incomplete scenes in `cfg.workers` spawned processes (round-robin); raise if any failed."""
    import multiprocessing as mp

    todo = [j.name for j in jobs if not is_complete(Path(cfg.out), j)]
    shares = [tuple(todo[w::cfg.workers]) for w in range(cfg.workers)]
    ctx = mp.get_context("spawn")  # CUDA cannot be forked
    procs = [ctx.Process(target=_worker, args=(dataclasses.replace(cfg, workers=1, only=share, progress=False),))
             for share in shares if share]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [share for p, share in zip(procs, [s for s in shares if s]) if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"curation workers failed on scenes {failed}; re-run to resume (complete scenes are kept)")
