"""EWA projection of 3D Gaussians to C images, as gsplat's `fully_fused_projection` (packed=False).

world -> camera, covariance R S S^T R^T, perspective Jacobian with the tangent clamped at 1.3x the
image's half-extent, `cov2d + eps2d * I`, conic = inverse, opacity-aware radius
`ceil(min(3.33, sqrt(2 ln(255 o))) * sqrt(cov2d_ii))`, culling by the near/far planes, by
`o < 1/255` and by the image bounds (radii [C,N,2] int32, 0 where culled). Culled entries of
means2d/depths/conics are 0 (gsplat leaves them uninitialised).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from faithfusion.render.raster.rules import ALPHA_THRESHOLD, EXTEND_MAX, FOV_MARGIN


@dataclass
class Projection:
    means2d: Tensor  # [C, N, 2] pixel coordinates (0 where culled)
    depths: Tensor  # [C, N] camera z (0 where culled)
    conics: Tensor  # [C, N, 3] inverse 2D covariance (a, b, c) (0 where culled)
    radii: Tensor  # [C, N, 2] int32 screen half-extent in pixels, 0 where culled
    visible: Tensor  # [C, N] bool, radii > 0


def quat_scale_factor(quats: Tensor, scales: Tensor) -> Tensor:
    """M = R(q) diag(s) `[N, 3, 3]` with covariance M M^T; `quats [N, 4]` wxyz, need not be unit."""
    q = quats * torch.rsqrt((quats * quats).sum(-1, keepdim=True))
    w, x, y, z = q.unbind(-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(-1, 3, 3)
    return R * scales[:, None, :]


def tangent_limits(f: Tensor, c: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """(lim_neg, lim_pos): x/z is clamped to [-lim_neg, lim_pos], the field of view widened by FOV_MARGIN
    of its half-extent on each side, as in gsplat's perspective Jacobian (focal `f`, principal point `c`)."""
    tan_fov = 0.5 * size / f
    lim_pos = (size - c) / f + FOV_MARGIN * tan_fov
    lim_neg = c / f + FOV_MARGIN * tan_fov
    return lim_neg, lim_pos


def _clamped_tangent(x: Tensor, rz: Tensor, f: Tensor, c: Tensor, size: int) -> Tensor:
    """x/z clamped to the widened field of view `[C, N]` (`f`, `c` `[C, 1]`)."""
    lim_neg, lim_pos = tangent_limits(f, c, size)
    return torch.clamp(x * rz, min=-lim_neg, max=lim_pos)


def project_gaussians(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor | None,  # [N]; None: fixed 3.33-sigma radius and no opacity culling
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> Projection:
    """EWA projection of 3D Gaussians to C images, differentiable in means, quats and scales."""
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]  # [C, 3, 3], [C, 3]
    means_c = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]  # [C, N, 3]
    W = torch.einsum("cij,njk->cnik", R, quat_scale_factor(quats, scales))  # [C, N, 3, 3]
    x, y, z = means_c.unbind(-1)  # [C, N]
    z_ok = (z >= near_plane) & (z <= far_plane)
    rz = 1.0 / torch.where(z_ok, z, torch.ones_like(z))  # culled entries get z = 1: finite gradients
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    tx = _clamped_tangent(x, rz, fx, cx, width)  # [C, N] = clamped x / z
    ty = _clamped_tangent(y, rz, fy, cy, height)
    # rows of J W with J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]] (tx here already divided by z)
    jw0 = (fx * rz)[..., None] * (W[..., 0, :] - tx[..., None] * W[..., 2, :])  # [C, N, 3]
    jw1 = (fy * rz)[..., None] * (W[..., 1, :] - ty[..., None] * W[..., 2, :])  # [C, N, 3]
    cov_a = (jw0 * jw0).sum(-1) + eps2d  # [C, N]
    cov_b = (jw0 * jw1).sum(-1)
    cov_c = (jw1 * jw1).sum(-1) + eps2d
    det = cov_a * cov_c - cov_b * cov_b
    det_ok = det > 0
    inv_det = 1.0 / torch.where(det_ok, det, torch.ones_like(det))
    conics = torch.stack([cov_c * inv_det, -cov_b * inv_det, cov_a * inv_det], dim=-1)  # [C, N, 3]
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)  # [C, N, 2]

    with torch.no_grad():
        radius, op_ok = _radii(cov_a, cov_c, opacities)  # [C, N, 2] float
        inside = (
            (means2d[..., 0] + radius[..., 0] > 0)
            & (means2d[..., 0] - radius[..., 0] < width)
            & (means2d[..., 1] + radius[..., 1] > 0)
            & (means2d[..., 1] - radius[..., 1] < height)
        )
        visible = z_ok & det_ok & op_ok & (radius > 0).any(-1) & inside  # [C, N]
        radii = torch.where(visible[..., None], radius, 0.0).to(torch.int32)  # [C, N, 2]

    return Projection(
        means2d=torch.where(visible[..., None], means2d, 0.0),
        depths=torch.where(visible, z, 0.0),
        conics=torch.where(visible[..., None], conics, 0.0),
        radii=radii,
        visible=visible,
    )


def _radii(cov_a: Tensor, cov_c: Tensor, opacities: Tensor | None) -> tuple[Tensor, Tensor]:
    """Opacity-aware screen radii `[C, N, 2]` (float, before culling) and the opacity test `[C, N]`."""
    if opacities is None:
        extend = torch.full_like(cov_a, EXTEND_MAX)
        op_ok = torch.ones_like(cov_a, dtype=torch.bool)
    else:
        ratio = (opacities / ALPHA_THRESHOLD).expand_as(cov_a)  # [C, N]
        op_ok = opacities.expand_as(cov_a) >= ALPHA_THRESHOLD
        extend = torch.sqrt(2.0 * torch.log(ratio.clamp_min(1.0))).clamp_max(EXTEND_MAX)
    radius = torch.stack([torch.ceil(extend * cov_a.sqrt()), torch.ceil(extend * cov_c.sqrt())], -1)
    return radius, op_ok

