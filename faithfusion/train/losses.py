"""Training losses: photometric (L1 + SSIM), lidar depth, sky opacity, regularisers."""

from __future__ import annotations

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


def lidar_depth_loss(
    depth: Tensor,  # [H, W, 1] expected depth
    alpha: Tensor,  # [H, W, 1]
    points: Tensor,  # [M, 3] lidar points in scene coordinates
    camera: Camera,
) -> Tensor | None:
    """L1 between rendered inverse depth and lidar inverse depth at the pixels the points hit."""
    uv, z = project_points(points, camera)
    h, w = depth.shape[:2]
    inside = (z > 0.1) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    if inside.sum() < 8:
        return None
    px = uv[inside].long()
    pred = depth[px[:, 1], px[:, 0], 0]
    weight = alpha[px[:, 1], px[:, 0], 0].detach()
    err = (1.0 / pred.clamp_min(1e-3) - 1.0 / z[inside]).abs()
    return (err * weight).mean()


def sky_opacity_loss(alpha: Tensor, sky_mask: Tensor) -> Tensor:
    """Binary cross-entropy pushing alpha to 0 on sky pixels and to 1 elsewhere (DriveStudio's idea).

    alpha [H, W, 1]; sky_mask [H, W] bool."""
    a = alpha[..., 0].clamp(1e-5, 1 - 1e-5)
    target = (~sky_mask).float()
    return F.binary_cross_entropy(a, target)
