"""`run_batch`: plan one job per scene, skip the finished ones, keep the executor's slots full, and summarise."""

from __future__ import annotations

import os
import time
from pathlib import Path

from faithfusion.batch.config import BatchConfig
from faithfusion.batch.executors import Executor, InProcessExecutor
from faithfusion.batch.job import JobSpec, finished_result
from faithfusion.batch.progress import BatchProgress
from faithfusion.batch.scenes import parse_scenes
from faithfusion.batch.sizes import scene_size
from faithfusion.batch.summary import counts, print_summary, write_summary
from faithfusion.errors import UserError
from faithfusion.utils.atomic import make_output_folder


class BatchFailedError(UserError, RuntimeError):
    """Some scenes failed; the others are finished and kept."""


def plan_jobs(cfg: BatchConfig) -> list[JobSpec]:
    """One job per scene of --scenes, in order (an unknown method, size or scene fails here, before any work)."""
    from faithfusion.fusion.presets import preset
    from faithfusion.utils.flags import require_at_least

    preset(cfg.method)
    size = scene_size(cfg.size)
    steps = cfg.steps if cfg.steps is not None else size.steps
    require_at_least("--steps", steps, 1)
    require_at_least("--threads", cfg.threads, 1)
    require_at_least("--workers", cfg.workers, 0)
    require_at_least("--gpus-per-job", cfg.gpus_per_job, 0.0)
    out = Path(cfg.out).resolve()
    return [JobSpec(scene=s, method=cfg.method, run=out / "runs" / cfg.method / s.name, size=size, steps=steps,
                    log=out / "logs" / cfg.method / f"{s.name}.log", status=out / "status" / cfg.method / f"{s.name}.json",
                    seed=cfg.seed, device=cfg.device, threads=cfg.threads, fixer=cfg.fixer, video_fixer=cfg.video_fixer)
            for s in parse_scenes(cfg.scenes, out)]


def make_executor(cfg: BatchConfig) -> Executor:
    if cfg.engine == "serial":
        return InProcessExecutor()
    from faithfusion.batch.ray_driver import RayExecutor

    workers = cfg.workers
    if not cfg.address and workers == 0:
        workers = max(1, (os.cpu_count() or 1) // cfg.threads)
    gpus = 0.0 if cfg.device == "cpu" else cfg.gpus_per_job  # a CPU job holds no GPU
    return RayExecutor(cfg.address, workers, cfg.threads, gpus)


def run_batch(cfg: BatchConfig, executor: Executor | None = None) -> dict:
    """Run every unfinished scene of the batch; returns the summary written to OUT/batch_METHOD.json.
    BatchFailedError (after the summary) when a scene failed: run the same command again to resume it."""
    jobs = plan_jobs(cfg)
    make_output_folder(cfg.out, "batch folder")
    t0 = time.perf_counter()
    results: dict[str, dict] = {}
    for job in jobs:
        done = finished_result(job)
        if done is not None:
            results[job.scene.name] = {**done, "skipped": True}
    todo = [job for job in jobs if job.scene.name not in results]
    executor = executor or make_executor(cfg)
    describe = getattr(executor, "describe", None)
    engine = describe() if describe else type(executor).__name__
    if cfg.progress:
        print(f"{len(jobs)} scenes, {len(results)} finished before, {len(todo)} to run on {engine}")
    try:
        with BatchProgress(len(jobs), len(results), enabled=cfg.progress) as view:
            in_flight = 0

            def fill() -> None:
                nonlocal in_flight
                while todo and in_flight < executor.slots:
                    job = todo.pop(0)
                    executor.submit(job)
                    view.started(job)
                    in_flight += 1

            fill()
            for job, result in executor.completed(view.tick):
                results[job.scene.name] = result
                view.finished(job, result)
                in_flight -= 1
                fill()
    finally:
        executor.close()
    ordered = [results[j.scene.name] for j in jobs if j.scene.name in results]
    summary = {"method": cfg.method, "size": cfg.size, "steps": jobs[0].steps, "engine": engine,
               "wall_seconds": time.perf_counter() - t0, "counts": counts(ordered), "scenes": ordered}
    path = write_summary(cfg.out, summary)
    if cfg.progress:
        print_summary(ordered, f"faithfusion batch: {cfg.method}, {cfg.size} ({summary['wall_seconds']:.0f} s)")
        print(f"summary -> {path}")
    failed = [r["name"] for r in ordered if r.get("status") == "failed"]
    if failed:
        raise BatchFailedError(f"{len(failed)} of {len(jobs)} scenes failed ({', '.join(failed)}; logs in "
                               f"{Path(cfg.out) / 'logs' / cfg.method}); run the same command again to resume them")
    return summary
