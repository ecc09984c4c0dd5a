"""Training losses: photometric (L1 + SSIM), lidar depth, sky opacity, regularisers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.eval.metrics import ssim_map


def photometric_loss(
    pred: Tensor,  # [B, H, W, 3]
    target: Tensor,  # [B, H, W, 3]
    ssim_lambda: float = 0.2,
    weight: Tensor | None = None,  # [B, H, W] per-pixel weight (EIG, masks); None = uniform
) -> Tensor:
    """(1 - lambda) * L1 + lambda * (1 - SSIM), optionally weighted pixel by pixel.

    With a weight map both terms are weighted means over the pixels (weights need not sum to 1)."""
    l1 = (pred - target).abs().mean(dim=-1)  # [B, H, W]
    dssim = 1.0 - ssim_map(pred, target).mean(dim=-1)  # [B, H, W]
    per_pixel = (1.0 - ssim_lambda) * l1 + ssim_lambda * dssim
    if weight is None:
        return per_pixel.mean()
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1e-8)


def project_points(points: Tensor, camera: Camera) -> tuple[Tensor, Tensor]:
    """World points [M,3] to pixel coordinates [M,2] and camera depths [M]."""
    pc = points @ camera.viewmat[:3, :3].T + camera.viewmat[:3, 3]  # [M, 3]
    z = pc[:, 2]
    uv = (pc[:, :2] / z.clamp_min(1e-6)[:, None]) @ camera.K[:2, :2].T + camera.K[:2, 2]  # [M, 2]
    return uv, z


MIN_LIDAR_HITS = 8
"""Fewer lidar points than this inside the image: no lidar depth term for the view."""


@dataclass
class LidarTargets:
    """The pixels a view's lidar points hit and their inverse depths: a function of the points and the camera
    only, so the trainer builds it once per view (`View.derived`) instead of projecting every step."""

    pixels: Tensor  # [K] long, flat pixel index y * W + x of each point inside the image
    inv_depth: Tensor  # [K] 1 / camera depth of each point


def lidar_targets(points: Tensor, camera: Camera, size: tuple[int, int] | None = None) -> LidarTargets | None:
    """Project `points` [M, 3] into `camera` (an image of `size` (H, W), default the camera's); None when fewer
    than MIN_LIDAR_HITS land in the image (one host synchronisation, here and not in the training step)."""
    uv, z = project_points(points, camera)
    h, w = size if size is not None else (camera.height, camera.width)
    inside = (z > 0.1) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    if inside.sum() < MIN_LIDAR_HITS:
        return None
    px = uv[inside].long()  # [K, 2]
    return LidarTargets(pixels=px[:, 1] * w + px[:, 0], inv_depth=1.0 / z[inside])


def lidar_target_loss(depth: Tensor, alpha: Tensor, targets: LidarTargets) -> Tensor:
    """L1 between rendered inverse depth and lidar inverse depth at the targets' pixels, weighted by alpha.

    depth, alpha `[H, W, 1]`. No host synchronisation."""
    pred = depth.reshape(-1)[targets.pixels]  # [K]
    weight = alpha.reshape(-1)[targets.pixels].detach()
    err = (1.0 / pred.clamp_min(1e-3) - targets.inv_depth).abs()
    return (err * weight).mean()


def lidar_depth_loss(
    depth: Tensor,  # [H, W, 1] expected depth
    alpha: Tensor,  # [H, W, 1]
    points: Tensor,  # [M, 3] lidar points in scene coordinates
    camera: Camera,
) -> Tensor | None:
    """L1 between rendered inverse depth and lidar inverse depth at the pixels the points hit (projects every call;
    the trainer keeps the projection per view with `lidar_targets` and `lidar_target_loss`)."""
    targets = lidar_targets(points, camera, tuple(depth.shape[:2]))
    return None if targets is None else lidar_target_loss(depth, alpha, targets)


@dataclass
class DenseDepthTarget:
    """A depth image's finite positive pixels, kept per view (`View.derived`) so the step needs no boolean indexing."""

    depth: Tensor  # [H, W] target depth, 1 where invalid (so that no inf or NaN reaches the loss)
    valid: Tensor  # [H, W] float, 1 on finite positive depths
    count: Tensor  # [] number of valid pixels


def dense_depth_target(depth: Tensor) -> DenseDepthTarget | None:
    """`depth` [H, W] as a loss target; None when no pixel is valid (one host synchronisation, here)."""
    valid = torch.isfinite(depth) & (depth > 0)
    if not bool(valid.any()):
        return None
    return DenseDepthTarget(depth=torch.where(valid, depth, torch.ones_like(depth)), valid=valid.float(),
                            count=valid.sum().float())


def dense_depth_loss(pred: Tensor, target: DenseDepthTarget) -> Tensor:
    """Mean relative depth error |pred - d| / max(d, 1e-3) over the valid pixels; pred `[H, W]`."""
    err = (pred - target.depth).abs() / target.depth.clamp_min(1e-3)
    return (err * target.valid).sum() / target.count


def sky_opacity_loss(alpha: Tensor, sky_mask: Tensor, target: Tensor | None = None) -> Tensor:
    """Binary cross-entropy pushing alpha to 0 on sky pixels and to 1 elsewhere (DriveStudio's idea).

    alpha [H, W, 1]; sky_mask [H, W] bool; target [H, W] the float (~sky_mask), when the caller keeps it."""
    a = alpha[..., 0].clamp(1e-5, 1 - 1e-5)
    if target is None:
        target = (~sky_mask).float()
    return F.binary_cross_entropy(a, target)
