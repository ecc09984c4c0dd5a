"""`faithfusion recon`: reconstruct a scene, checkpointing and resuming, and write the run folder.

RUN/config.yaml   the resolved configuration
RUN/ckpt/         step_XXXXXX.pt checkpoints (the newest two)
RUN/point_cloud.ply  the Gaussians in the INRIA layout, in world units (metres)
RUN/renders/      held-out views, render | ground truth
RUN/metrics.json  held-out PSNR / SSIM / LPIPS, speed, Gaussian count
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
import yaml

from faithfusion.errors import UserError
from faithfusion.data.check import check_scene_images
from faithfusion.data.scene import SceneData
from faithfusion.train.checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint
from faithfusion.train.config import ReconConfig
from faithfusion.train.trainer import Trainer
from faithfusion.utils.device import resolve_device
from faithfusion.utils.jsonio import save_json_atomic, to_plain


class RunFolderError(UserError, FileExistsError):
    pass


def prepare_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Create the run folder; refuse to write over a user's existing run unless asked."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise RunFolderError(
            f"{out}: run folder exists and is not empty; pass --resume to continue it or --overwrite to replace its outputs"
        )
    out.mkdir(parents=True, exist_ok=True)


def write_config(out: Path, cfg: ReconConfig, extra: dict | None = None) -> None:
    payload = to_plain(asdict(cfg))
    if extra:
        payload["_run"] = to_plain(extra)
    tmp = out / "config.yaml.tmp"
    tmp.write_text(yaml.safe_dump(payload, sort_keys=False))
    tmp.replace(out / "config.yaml")


def load_scene_for(cfg: ReconConfig) -> SceneData:
    from faithfusion.data.load import detect_format, load_scene

    opts: dict = {"holdout_every": cfg.holdout_every}
    if detect_format(cfg.data) == "drivestudio":
        opts["cameras"] = cfg.cameras
    return check_scene_images(load_scene(cfg.data, **opts))


def run_recon(cfg: ReconConfig, scene: SceneData | None = None) -> dict:
    """Train (or resume) a reconstruction and write every output; returns the metrics dict."""
    trainer, scene = train_run(cfg, scene)
    return finish_run(trainer, scene, cfg, Path(cfg.out))


def train_run(cfg: ReconConfig, scene: SceneData | None = None, trainer_factory=None) -> tuple[Trainer, SceneData]:
    """Prepare RUN/, build (or resume) the trainer and train to cfg.steps with checkpoints.

    `trainer_factory(scene, cfg, device)` lets a method supply a Trainer subclass or a prepared one."""
    out = Path(cfg.out)
    prepare_run_folder(out, cfg.resume, cfg.overwrite)
    device = resolve_device(cfg.device)
    scene = scene or load_scene_for(cfg)
    trainer = (trainer_factory or Trainer)(scene, cfg, device)
    ckpt_dir = out / "ckpt"
    if cfg.resume:
        last = latest_checkpoint(ckpt_dir)
        if last is not None:
            trainer.load_state_dict(load_checkpoint(last, device))
            print(f"resumed from {last} at step {trainer.step}")
    write_config(out, cfg, {"scene": scene.summary(), "device": str(device)})

    def on_step(tr: Trainer, stats: dict) -> None:
        if cfg.ckpt_every > 0 and tr.step % cfg.ckpt_every == 0 and tr.step < cfg.steps:
            save_checkpoint(checkpoint_path(ckpt_dir, tr.step), tr.state_dict())
        if cfg.eval_every > 0 and tr.step % cfg.eval_every == 0 and scene.test_ids:
            result = tr.evaluate(eval_ids(scene, cfg))
            print(f"step {tr.step}: held-out {json.dumps(result['mean'])}")

    trainer.fit(cfg.steps, progress=cfg.progress, on_step=on_step)
    save_checkpoint(checkpoint_path(ckpt_dir, trainer.step), trainer.state_dict())
    return trainer, scene


def eval_ids(scene: SceneData, cfg: ReconConfig) -> list[int]:
    ids = scene.test_ids
    if cfg.max_eval_views > 0 and len(ids) > cfg.max_eval_views:
        step = len(ids) / cfg.max_eval_views
        ids = [ids[int(k * step)] for k in range(cfg.max_eval_views)]
    return ids


def finish_run(trainer: Trainer, scene: SceneData, cfg: ReconConfig, out: Path) -> dict:
    """PLY, held-out renders and metrics.json."""
    from faithfusion.gaussians.ply import save_ply

    save_ply(trainer.model, out / "point_cloud.ply", transform=scene.transform, overwrite=True)
    t0 = time.perf_counter()
    held_out = trainer.evaluate(eval_ids(scene, cfg), out / "renders" if cfg.save_renders else None) if scene.test_ids else {"mean": {}, "per_view": []}
    train_eval = trainer.evaluate(scene.train_ids[:: max(1, len(scene.train_ids) // 8)])
    metrics = {
        "steps": trainer.step,
        "device": str(trainer.device),
        "device_name": torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda" else "cpu",
        "num_gaussians": len(trainer.model),
        "train_seconds": trainer.train_seconds,
        "iterations_per_second": trainer.step / max(trainer.train_seconds, 1e-9),
        "eval_seconds": time.perf_counter() - t0,
        "resolution": [trainer.real.views[0].camera.width, trainer.real.views[0].camera.height],
        "test": held_out["mean"],
        "test_per_view": held_out["per_view"],
        "train_subset": train_eval["mean"],
        "scene": scene.summary(),
    }
    save_json_atomic(out / "metrics.json", metrics)
    return metrics
