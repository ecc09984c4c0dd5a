"""Initial Gaussians: the scene's own points (lidar or SfM) plus random points for unobserved space."""

from __future__ import annotations

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.data.scene import SceneData
from faithfusion.gaussians.model import GaussianModel, random_points_in_shell
from faithfusion.train.config import InitConfig


def lookat_center(cameras: list[Camera]) -> Tensor:
    """The point nearest (least squares) to all optical axes `[3]`: what an object capture orbits."""
    A = torch.zeros(3, 3, dtype=torch.float64)
    b = torch.zeros(3, dtype=torch.float64)
    for cam in cameras:
        c2w = cam.camtoworld.double()
        d = c2w[:3, 2] / c2w[:3, 2].norm()
        P = torch.eye(3, dtype=torch.float64) - torch.outer(d, d)
        A += P
        b += P @ c2w[:3, 3]
    return torch.linalg.lstsq(A, b).solution.float()


def camera_extent(cameras: list[Camera]) -> tuple[Tensor, float]:
    """Centroid of the camera centres and the largest distance to it (gsplat's scene scale basis)."""
    centers = torch.stack([c.center for c in cameras])
    centroid = centers.mean(0)
    return centroid, float((centers - centroid).norm(dim=-1).max().clamp_min(1e-6))


def init_gaussians(scene: SceneData, cfg: InitConfig, sh_degree: int, generator: torch.Generator) -> GaussianModel:
    """Gaussians on the scene points (subset to cfg.max_points) plus cfg.random_points random ones.

    Object scenes: half the random points in a ball at the look-at centre, half in a far shell.
    Driving scenes: random points in the box around the lidar points (the observed street)."""
    cameras = [scene.frames[i].camera for i in scene.train_ids]
    points, colors = scene.points.float(), scene.point_colors
    if points.shape[0] > cfg.max_points:
        keep = torch.randperm(points.shape[0], generator=generator)[: cfg.max_points]
        points = points[keep]
        colors = colors[keep] if colors is not None else None
    if colors is None:
        colors = torch.full_like(points, 0.5)
    _, radius = camera_extent(cameras)
    n_rand = cfg.random_points
    if scene.kind == "driving" and points.shape[0] > 0:
        lo, hi = points.min(0).values, points.max(0).values
        pad = 0.1 * (hi - lo)
        rand = lo - pad + (hi - lo + 2 * pad) * torch.rand(n_rand, 3, generator=generator)
    else:
        center = lookat_center(cameras)
        n_ball = n_rand // 2
        ball_dirs = torch.nn.functional.normalize(torch.randn(n_ball, 3, generator=generator), dim=-1)
        ball_r = cfg.ball_radius * radius * torch.rand(n_ball, 1, generator=generator) ** (1 / 3)
        shell = random_points_in_shell(
            n_rand - n_ball, center, cfg.shell_radius[0] * radius, cfg.shell_radius[1] * radius, generator
        )
        rand = torch.cat([center + ball_dirs * ball_r, shell])
    rand_colors = torch.rand(rand.shape[0], 3, generator=generator)
    all_points = torch.cat([points, rand])
    all_colors = torch.cat([colors.float(), rand_colors])
    if all_points.shape[0] == 0:
        raise ValueError(f"{scene.source}: no points to initialise Gaussians (scene points and random points both empty)")
    return GaussianModel.from_points(
        all_points, all_colors, sh_degree, init_opacity=cfg.opacity, init_scale=cfg.scale, generator=generator
    )
