"""The published anti-drift measures for generated views: frozen geometry and lidar depth in shifted cameras.

`--faithfusion.freeze-original`: the losses of fused views give no gradient to the Gaussians' positions
(`means`) and rotations (`quats`); their colours, opacities and scales still learn from them. It is gradient
masking around the backward pass of a fused view's loss (`ViewPool.grad_guard`): the rows of those two
gradients are put back to what they were before it (the captured view's gradient of the same step, or zero for a
step that drew only a fused view). Which Gaussians are "original": `original(trainer) -> [N] bool`, by default
every one, because in this trainer every Gaussian descends from the reconstruction's (densification only splits,
clones and relocates existing Gaussians; no Gaussian is created from a generated image). Adam's momentum from
earlier captured steps still moves them: the measure removes the generated views' gradient, not the optimiser state.

`--faithfusion.fused-lidar`: a fused view keeps its captured frame's lidar points, visible in the shifted camera
(the nearest point per pixel), and the trainer's lidar depth term (train/losses.py `lidar_depth_loss`, weight
`--depth-lambda`) applies to it as to a captured view. Scenes without lidar get nothing.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.train.losses import project_points

FROZEN_PARAMS = ("means", "quats")

OriginalFn = Callable[[object], Tensor | None]
"""trainer -> `[N] bool` the Gaussians whose geometry fused views may not move; None = every Gaussian."""


def every_gaussian(trainer) -> None:
    return None


def freeze_geometry_guard(original: OriginalFn = every_gaussian, names: tuple[str, ...] = FROZEN_PARAMS):
    """A `ViewPool.grad_guard`: the backward pass inside it adds nothing to `names`' gradient rows of `original`."""

    @contextmanager
    def guard(trainer):
        params = trainer.model.params
        before = {n: None if params[n].grad is None else params[n].grad.detach().clone() for n in names}
        yield
        rows = original(trainer)
        with torch.no_grad():
            for n in names:
                grad = params[n].grad
                if grad is None:
                    continue
                kept = before[n] if before[n] is not None else torch.zeros_like(grad)
                if rows is None:
                    grad.copy_(kept)
                else:
                    grad[rows] = kept[rows]

    return guard


def visible_lidar(points: Tensor, camera: Camera, near: float = 0.1) -> Tensor:
    """The points `[M, 3]` that `camera` sees first along their pixel's ray (the nearest per pixel) `[M', 3]`."""
    uv, z = project_points(points, camera)
    w, h = camera.width, camera.height
    inside = (z > near) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    pts, uv, z = points[inside], uv[inside].long(), z[inside]
    if pts.shape[0] == 0:
        return pts
    pix = uv[:, 1] * w + uv[:, 0]  # [M'] pixel index
    nearest = torch.full((h * w,), float("inf"), dtype=z.dtype, device=z.device)
    nearest.scatter_reduce_(0, pix, z, reduce="amin")
    return pts[z <= nearest[pix]]


def lidar_for_cameras(scene, frame_ids: list[int], cameras: list[Camera]) -> list[Tensor | None]:
    """For each shifted camera, its captured frame's lidar points it sees (None where the frame has no lidar)."""
    out = []
    for i, cam in zip(frame_ids, cameras):
        pts = scene.frames[i].lidar_points
        out.append(None if pts is None else visible_lidar(pts.to(cam.K.device).float(), cam))
    return out


def attach_lidar(views, scene, frame_ids: list[int]) -> None:
    """Give each fused view (in place) its captured frame's lidar points that its shifted camera sees."""
    lidars = lidar_for_cameras(scene, frame_ids, [v.camera.to("cpu") for v in views])
    for v, pts in zip(views, lidars):
        v.lidar = None if pts is None else pts.to(v.camera.K.device)
