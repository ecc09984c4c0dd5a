"""A scene split sparsely: training on every k-th timestep without the held-out camera, the rest held out."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from faithfusion.curation.config import CurateConfig
from faithfusion.curation.jobs import SceneJob
from faithfusion.data.scene import SceneData

SYNTH_CAMERA_IDS = {"front": 0, "front_left": 1, "front_right": 2, "side_left": 3, "side_right": 4}


def synth_camera_ids(cfg: CurateConfig) -> list[int]:
    return sorted(SYNTH_CAMERA_IDS[n] for n in cfg.synth_cameras)


def load_sparse_scene(job: SceneJob, cfg: CurateConfig) -> SceneData:
    """The scene with train_ids = every k-th timestep (image) without the held-out camera; test_ids = the rest."""
    from faithfusion.data.load import load_scene

    if not job.synth:
        scene = load_scene(job.path, holdout_every=0)
        n = len(scene.frames)
        scene.train_ids = list(range(0, n, cfg.every))
        scene.test_ids = [i for i in range(n) if i % cfg.every]
        return scene
    cams = synth_camera_ids(cfg)
    scene = load_scene(job.path, holdout_every=0, cameras=tuple(cams), color_points=False, max_points=cfg.max_points)
    left_out = cfg.holdout_camera if len(cams) > 1 else None
    scene.train_ids = [i for i, f in enumerate(scene.frames) if f.timestep % cfg.every == 0 and int(f.cam_name) != left_out]
    scene.test_ids = [i for i in range(len(scene.frames)) if i not in set(scene.train_ids)]
    scene.point_colors = colour_from_training(scene)
    return scene


def colour_from_training(scene: SceneData) -> Tensor:
    """Point colours from the training images only (each point from the training timestep whose ego is nearest)."""
    from faithfusion.data.drivestudio import _color_points

    pts = scene.points.numpy()  # [N, 3]
    steps = sorted({scene.frames[i].timestep for i in scene.train_ids})
    ego = {f.timestep: f.ego_to_world[:3, 3].numpy() for f in scene.frames}
    centres = np.stack([ego[t] for t in steps])  # [S, 3]
    nearest = np.empty(len(pts), dtype=np.int64)
    for a in range(0, len(pts), 65536):  # chunks keep the distance matrix small
        d = ((pts[a:a + 65536, None, :] - centres[None]) ** 2).sum(-1)  # [n, S]
        nearest[a:a + 65536] = np.asarray(steps)[d.argmin(1)]
    return torch.from_numpy(_color_points(pts, nearest, scene.frames, scene.train_ids, 480))
