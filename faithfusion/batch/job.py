"""One scene's job: synthesise it if needed, train it with a method preset (resuming its checkpoint), evaluate it,
and mark it done. Plain functions of a picklable `JobSpec`, so any scheduler (or none) can run them."""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from faithfusion.batch.scenes import SceneSpec
from faithfusion.batch.sizes import SceneSize
from faithfusion.utils.jsonio import read_json, save_json_atomic

DONE_NAME = "done.json"
"""RUN/done.json: the scene's result, written atomically after its evaluation (the marker that it is finished)."""


@dataclass(frozen=True)
class JobSpec:
    """Everything one scene's job needs (paths and plain values: it crosses process and machine boundaries)."""

    scene: SceneSpec
    method: str
    """A `faithfusion fuse` preset (3dgs = plain `recon`)."""
    run: Path
    """The run folder: OUT/runs/METHOD/NAME."""
    size: SceneSize
    steps: int
    log: Path
    """The job's stdout and stderr: OUT/logs/METHOD/NAME.log."""
    status: Path
    """The job's current stage, for the driver's progress view: OUT/status/METHOD/NAME.json."""
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    """torch threads in the job (0: leave torch's default)."""
    fixer: str | None = None
    video_fixer: str | None = None
    holdout_every: int = 10


def done_marker(job: JobSpec) -> Path:
    return Path(job.run) / DONE_NAME


def finished_result(job: JobSpec) -> dict | None:
    """The result in RUN/done.json when the scene finished with this method and step budget, else None."""
    path = done_marker(job)
    if not path.is_file():
        return None
    result = read_json(path)
    if not isinstance(result, dict) or result.get("method") != job.method or result.get("steps") != job.steps:
        return None  # another method or budget finished here: this one still has to run (it resumes the checkpoint)
    return result


def set_stage(job: JobSpec, stage: str, **extra) -> None:
    """Record the job's stage (synth, train, eval, done, failed) for the progress view."""
    save_json_atomic(job.status, {"name": job.scene.name, "stage": stage, "time": time.time(), **extra})


def ensure_scene(job: JobSpec) -> Path:
    """The scene folder, synthesised first when it is a SynthStreet seed not yet (or only partly) written."""
    scene = job.scene
    if scene.synthesised and not (scene.data / "scene.json").is_file():
        from faithfusion.synth.generate import generate

        size = job.size
        generate(scene.data, scene.seed, frames=size.frames, cameras=size.cameras, width=size.width,
                 height=size.height, shifts=size.shifts, progress=False, overwrite=True)
    return scene.data


def checkpoint_reached(run: Path) -> str | None:
    """What a resume starts from: `step N` (the newest step checkpoint) or `round N`, or None (a fresh start)."""
    from faithfusion.fusion.rounds import latest_round
    from faithfusion.train.checkpoint import checkpoints_by_step

    found = checkpoints_by_step(Path(run) / "ckpt")
    last_round = latest_round(Path(run) / "ckpt") if (Path(run) / "ckpt").is_dir() else None
    if last_round is not None:
        return last_round.stem.replace("_", " ")
    return f"step {found[-1][0]}" if found else None


def scene_cameras(job: JobSpec) -> tuple[int, ...]:
    """The DriveStudio camera ids to train on: a synthesised scene's rig; of a given DriveStudio folder, those of the
    front three (0, 1, 2, `recon`'s default) that it has; () for other layouts (the reader's default)."""
    if job.scene.synthesised:
        return tuple(range(len(job.size.cameras)))
    intrinsics = Path(job.scene.data) / "intrinsics"
    if not intrinsics.is_dir():
        return ()
    return tuple(c for c in (0, 1, 2) if (intrinsics / f"{c}.txt").is_file())


def run_config(job: JobSpec):
    """The method preset's config for this scene: the demo's recipe at the job's size, always with --resume
    (a fresh folder starts from nothing, an interrupted one continues its newest checkpoint)."""
    from faithfusion.fusion.config import FaithFusionSchedule, fuse_config
    from faithfusion.fusion.presets import preset
    from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig

    steps, size = job.steps, job.size
    cameras = {"cameras": scene_cameras(job)} if scene_cameras(job) else {}
    base = ReconConfig(
        data=job.scene.data, out=job.run, steps=steps, device=job.device, holdout_every=job.holdout_every,
        resume=True, progress=False, seed=job.seed,
        ckpt_every=min(1000, max(1, steps // 5)),  # an interrupted scene loses at most a fifth of its steps
        init=InitConfig(max_points=size.max_points, random_points=size.random_points),
        strategy=StrategyConfig(refine_stop=int(0.75 * steps)), **cameras,
    )
    video_fixer = job.video_fixer if job.video_fixer is not None or job.fixer != "identity" else "identity"
    return fuse_config(preset(job.method).config, base, fixer=job.fixer, video_fixer=video_fixer,
                       faithfusion=replace(FaithFusionSchedule(), view_stride=size.fuse_view_stride))


def evaluate(job: JobSpec, run) -> dict:
    """Lane-shift PSNR per shift magnitude against the scene's ground truth (RUN/eval/lane_shift.json), when it has one."""
    from faithfusion.eval.lane_shift import evaluate_lane_shift

    root = Path(job.scene.data)
    if not (root / "gt_shifted").is_dir():
        return {}
    shifts = list(job.size.shifts) if job.scene.synthesised else None
    result = evaluate_lane_shift(run.render, run.scene, root, shifts, job.size.frame_stride, run.trainer.cfg.scale)
    save_json_atomic(Path(job.run) / "eval" / "lane_shift.json", result)
    return {str(m): v["psnr"] for m, v in result["by_magnitude"].items()}


def run_job(job: JobSpec) -> dict:
    """Synthesise (if needed), train (resuming), evaluate and write RUN/done.json; returns the scene's result.
    A scene already finished with this method and budget is not run again."""
    done = finished_result(job)
    if done is not None:
        return {**done, "skipped": True}
    import torch

    from faithfusion.fusion.runner import run_method
    from faithfusion.train.lock import release_run_lock

    if job.threads > 0:
        torch.set_num_threads(job.threads)
    t0 = time.perf_counter()
    set_stage(job, "synth" if job.scene.synthesised else "load")
    ensure_scene(job)
    resumed_from = checkpoint_reached(job.run)
    set_stage(job, "train", resumed_from=resumed_from)
    try:
        run = run_method(job.method, run_config(job))
        if run.stopped:
            raise RuntimeError(f"{job.run}: the method stopped before its last round")
        set_stage(job, "eval")
        lane_shift = evaluate(job, run)
    finally:
        release_run_lock(Path(job.run))
    metrics = run.metrics
    result = {
        "name": job.scene.name, "method": job.method, "status": "done", "steps": job.steps,
        "data": str(job.scene.data), "run": str(job.run), "device": metrics.get("device"),
        "num_gaussians": metrics.get("num_gaussians"), "train_seconds": metrics.get("train_seconds"),
        "job_seconds": time.perf_counter() - t0, "resumed_from": resumed_from,
        "test": metrics.get("test", {}), "lane_shift_psnr": lane_shift,
    }
    save_json_atomic(done_marker(job), result)  # last: a scene is finished only once this file is there
    set_stage(job, "done")
    return result


def run_job_logged(job: JobSpec) -> dict:
    """`run_job` with its output in the job's log file; an error becomes a `failed` result naming it (the batch goes on)."""
    Path(job.log).parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {job.scene.name} {job.method}", flush=True)
        try:
            return run_job(job)
        except Exception as err:  # noqa: BLE001 - reported in the summary; the other scenes go on
            traceback.print_exc(file=sys.stderr)
            message = f"{type(err).__name__}: {err}".splitlines()[0]
            set_stage(job, "failed", error=message)
            return {"name": job.scene.name, "method": job.method, "status": "failed", "steps": job.steps,
                    "run": str(job.run), "error": message, "log": str(job.log)}
