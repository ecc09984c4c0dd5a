"""All samples of one scene (sparse reconstruction, snapshots, every kind), and the scenes this process curates."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

from faithfusion.curation.config import CurateConfig
from faithfusion.curation.ground_truth import SynthOracle
from faithfusion.curation.jobs import SceneJob, ensure_synth
from faithfusion.curation.references import References
from faithfusion.curation.samples import Ctx, cross_camera_samples, lane_shift_samples, sparse_samples, underfit_samples
from faithfusion.curation.snapshots import Renderer, load_weights, train_with_snapshots
from faithfusion.curation.sparse import load_sparse_scene
from faithfusion.curation.video import video_samples
from faithfusion.utils.jsonio import save_json_atomic
from faithfusion.utils.progress import ProgressBar

MARKER = "complete.json"


def curate_scene(job: SceneJob, cfg: CurateConfig, tick: Callable[[str], None]) -> list[dict]:
    """Reconstruct one scene sparsely and write all of its samples; returns their index entries."""
    from faithfusion.train.checkpoint import load_checkpoint

    root = Path(cfg.out)
    folder = root / "samples" / job.name
    if folder.exists():
        shutil.rmtree(folder)  # an incomplete earlier attempt
    if job.synth:
        ensure_synth(job, cfg)
    scene = load_sparse_scene(job, cfg)
    trainer, ckpts = train_with_snapshots(job, scene, cfg)
    refs = References(scene, scene.train_ids, cfg.scale, folder / "reference", root)
    ctx = Ctx(job, cfg, scene, refs, root, folder, tick)
    kinds = set(cfg.resolved_kinds())
    samples: list[dict] = []
    steps = sorted(ckpts)
    if "underfit" in kinds:  # renders (and EIG sessions) of the 25-75 % snapshots
        for level, step in enumerate(steps[:-1]):
            load_weights(trainer, load_checkpoint(ckpts[step], trainer.device))
            rd = Renderer(trainer, scene, cfg.with_eig, cfg.eig_calib_views)
            samples += underfit_samples(ctx, rd, level, round(100 * step / cfg.steps))
    final = kinds & ({"sparse", "cross_camera", "lane_shift", "video"} if job.synth else {"sparse"})
    if final:
        load_weights(trainer, load_checkpoint(ckpts[steps[-1]], trainer.device))
        rd = Renderer(trainer, scene, cfg.with_eig, cfg.eig_calib_views)
        if "sparse" in final:
            samples += sparse_samples(ctx, rd)
        if "cross_camera" in final:
            samples += cross_camera_samples(ctx, rd)
        if "lane_shift" in final:
            samples += lane_shift_samples(ctx, rd)
        if "video" in final:
            samples += video_samples(ctx, rd, SynthOracle(job.path))
    save_json_atomic(folder / "samples.json", {"samples": samples})
    save_json_atomic(folder / MARKER, {"scene": job.name, "samples": len(samples), "steps": trainer.step,
                                       "train_views": len(scene.train_ids), "gaussians": len(trainer.model)})
    return samples


def is_complete(root: Path, job: SceneJob) -> bool:
    return (root / "samples" / job.name / MARKER).is_file() and (root / "samples" / job.name / "samples.json").is_file()


def curate_scenes(cfg: CurateConfig, jobs: list[SceneJob], t0: float) -> tuple[list[str], list[str], list[str]]:
    """Curate the incomplete scenes of `jobs` (those in `cfg.only`, when given) in this process."""
    root = Path(cfg.out)
    done, skipped, pending = [], [], []
    with ProgressBar("curate {task.fields[what]}", enabled=cfg.progress, what="") as bar:
        for job in jobs:
            if cfg.only and job.name not in cfg.only:
                continue
            if is_complete(root, job):
                skipped.append(job.name)
                continue
            if cfg.max_seconds > 0 and time.perf_counter() - t0 > cfg.max_seconds:
                pending.append(job.name)
                continue
            bar.restart(None, what=f"{job.name} ({job.split})")
            curate_scene(job, cfg, bar.advance)
            done.append(job.name)
    return done, skipped, pending
