"""Difix3D (and Difix3D+) as a schedule: progressive novel poses, Difix with a reference view.

Each round (every 2000 published steps after a warm-up of 2000): for every target camera (the
lane-shift cameras of the training frames), the nearest pose trained on so far moves 0.5 m toward it
(SLERP rotation); the model renders there, Difix repairs the render with the nearest captured image
as reference, and the repaired views join the novel pool (drawn 30 % of the steps, loss x 0.3,
pixels with rendered alpha < 0.5 masked out). Difix3D+ also runs Difix on the final renders: its
`render_fn` is the evaluation's render function.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.data.scene import SceneData
from faithfusion.fusion.config import Difix3DConfig, FuseConfig
from faithfusion.fusion.fixers import ChosenFixer
from faithfusion.fusion.paths import progressive_poses, target_cameras
from faithfusion.fusion.pools import (
    ReferenceImages, camera_from_state, camera_state, fix_frames, make_views, post_render_fixer, render_cameras,
)
from faithfusion.fusion.rounds import Round
from faithfusion.train.views import ViewPool


class Difix3D:
    def __init__(self, cfg: Difix3DConfig, scene: SceneData, fixer: ChosenFixer, plus: bool = False) -> None:
        self.name = "difix3d"  # the preset's name, set by the runner
        self.sched = cfg.difix3d
        self.scene, self.fixer, self.plus = scene, fixer, plus
        self.pool = ViewPool("difix3d_novel", [], probability=self.sched.probability, loss_weight=self.sched.loss_weight,
                             paired=self.sched.paired)
        self.pools = [self.pool]
        self.targets = target_cameras(scene, scene.train_ids, tuple(self.sched.target_shifts), cfg.scale)
        self.refs = ReferenceImages(scene, scene.train_ids, cfg.scale)
        self.novel: list[Camera] = []  # every novel pose so far (CPU), in round order
        self.last: list[Camera] = []  # the poses of the latest round, one per target

    def recon_config(self, cfg: FuseConfig) -> FuseConfig:
        return cfg

    def rounds(self, total: int) -> list[Round]:
        s = self.sched
        steps = list(range(s.at(s.warmup, total), total, max(1, s.at(s.every, total))))
        if s.max_rounds > 0:
            steps = steps[: s.max_rounds]
        return [Round(k, step) for k, step in enumerate(steps)]

    def run_round(self, trainer, rnd: Round) -> dict:
        known = [v.camera.to("cpu") for v in trainer.real.views] + self.novel
        step = self.scene.metres_to_scene(self.sched.step_metres)
        poses = progressive_poses(known, self.targets, step)
        renders = render_cameras(trainer, poses)
        fixed = fix_frames(self.fixer.fixer, renders.rgb, self.refs.for_cameras(poses).to(renders.rgb.device))
        views = make_views(poses, fixed, masks=renders.alpha >= self.sched.alpha_min, device=trainer.device)
        self.pool.views.extend(views)
        self.pool._order = []
        self.novel.extend(poses)
        self.last = poses
        gaps = torch.stack([(p.center - t.center.cpu()).norm() for p, t in zip(poses, self.targets)])
        return {"views": len(views), "pool": len(self.pool.views), "gap_to_target_mean": float(gaps.mean()) / self.scene.metres_to_scene(1.0),
                "masked_fraction": float((renders.alpha < self.sched.alpha_min).float().mean())}

    def on_step(self, trainer, stats: dict) -> None:
        return None

    def state_dict(self) -> dict:
        return {"novel": [camera_state(c) for c in self.novel], "last": [camera_state(c) for c in self.last]}

    def load_state_dict(self, state: dict, trainer) -> None:
        self.novel = [camera_from_state(c) for c in state["novel"]]
        self.last = [camera_from_state(c) for c in state["last"]]

    def render_fn(self, trainer) -> Callable[[Camera], Tensor] | None:
        """Difix3D+: the render, fixed once more with the nearest captured image as reference."""
        return post_render_fixer(trainer, self.fixer.fixer, self.refs) if self.plus else None
