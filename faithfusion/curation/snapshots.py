"""One reconstruction per scene with checkpoints at 25, 50, 75 and 100 % of its steps, and what they render."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.curation.config import CurateConfig
from faithfusion.curation.jobs import SceneJob
from faithfusion.data.scene import SceneData

FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def recon_config(job: SceneJob, cfg: CurateConfig):
    from faithfusion.train.config import InitConfig, ReconConfig

    return ReconConfig(data=job.path, out=Path(cfg.out) / "recon" / job.name, steps=cfg.steps, device=cfg.device,
                       scale=cfg.scale, holdout_every=0, progress=False, seed=cfg.seed,
                       init=InitConfig(max_points=cfg.max_points, random_points=cfg.random_points))


def snapshot_steps(steps: int) -> list[int]:
    return sorted({max(1, round(steps * f)) for f in FRACTIONS})


def train_with_snapshots(job: SceneJob, scene: SceneData, cfg: CurateConfig) -> tuple[Any, dict[int, Path]]:
    """Train (resuming from the newest snapshot) and save a checkpoint at every snapshot step."""
    from faithfusion.train.checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint
    from faithfusion.train.trainer import Trainer
    from faithfusion.utils.device import resolve_device

    rcfg = recon_config(job, cfg)
    trainer = Trainer(scene, rcfg, resolve_device(cfg.device))
    ckpt_dir = Path(rcfg.out) / "ckpt"
    last = latest_checkpoint(ckpt_dir)
    if last is not None:
        trainer.load_state_dict(load_checkpoint(last, trainer.device))
    paths = {}
    for until in snapshot_steps(cfg.steps):
        path = checkpoint_path(ckpt_dir, until)
        if trainer.step < until:
            trainer.fit(until, progress=False)
            save_checkpoint(path, trainer.state_dict(), keep_last=len(FRACTIONS))
        paths[until] = path
    return trainer, paths


def load_weights(trainer: Any, state: dict) -> None:
    """Put a checkpoint's Gaussians (and sky) into the trainer, for rendering."""
    from faithfusion.gaussians.model import GaussianModel

    trainer.model = GaussianModel({k: v.to(trainer.device) for k, v in state["params"].items()}, state["sh_degree"])
    if trainer.sky is not None and state.get("sky") is not None:
        trainer.sky.load_state_dict(state["sky"])
    trainer.step = int(state["step"])


@dataclass
class Render:
    rgb: Tensor  # [H, W, 3] in [0, 1]
    depth: Tensor  # [H, W] metres (world units)
    alpha: Tensor  # [H, W]


class Renderer:
    """Renders (and EIG maps, when asked) of the trainer's current weights."""

    def __init__(self, trainer: Any, scene: SceneData, with_eig: bool, calib_views: int) -> None:
        self.trainer, self.scene = trainer, scene
        self.session = None
        if with_eig:
            from faithfusion.eig.session import build_session

            self.session = build_session(trainer, calib_views=calib_views, progress=False)

    @torch.no_grad()
    def render(self, cam: Camera) -> Render:
        tr = self.trainer
        rgb, out = tr.render_camera(cam.to(tr.device), tr.active_sh_degree())
        depth = out.depth[0, ..., 0] / self.scene.transform.scale  # scene units -> metres
        return Render(rgb.clamp(0, 1).cpu(), depth.cpu(), out.alpha[0, ..., 0].cpu())

    def eig(self, cam: Camera) -> Tensor | None:  # [H, W] calibrated g
        if self.session is None:
            return None
        return self.session.eig(cam.to(self.trainer.device))[1].detach().cpu()
