"""Real spherical harmonics up to degree 3, with gsplat 1.5.3's constants, signs and basis order.

The basis is the one of Sloan's "Efficient Spherical Harmonic Evaluation" (JCGT 2013) that gsplat
and the INRIA 3DGS code use: index l*l + l + m for band l and order m, with the sign pattern
Y1 = (-C1 y, C1 z, -C1 x). Directions are normalised before bands 1..3 are evaluated (band 0 does
not depend on them). The colour of a Gaussian seen from a camera is `SH(dir) + 0.5` clamped at 0,
where `dir = mean - camera_centre`, exactly as `gsplat.rasterization` does it.
"""

from __future__ import annotations

import torch
from torch import Tensor

C0 = 0.2820947917738781
C1 = 0.48860251190292
# band 2
C2_XY = 1.092548430592079  # pSH4 = 0.5462742152960395 * 2xy, pSH5/7 = -1.0925... * z * (y|x)
C2_HALF = 0.5462742152960395
C2_Z2 = 0.9461746957575601
C2_OFF = 0.3153915652525201
# band 3
C3_A = 0.5900435899266435
C3_B = 1.445305721320277
C3_C2 = 2.285228997322329
C3_C0 = 0.4570457994644658
C3_D2 = 1.865881662950577
C3_D0 = 1.119528997770346


def num_bases(degree: int) -> int:
    return (degree + 1) ** 2


def normalize_dirs(dirs: Tensor) -> Tensor:
    """Unit directions `[..., 3]` (a zero vector stays finite)."""
    sq = (dirs * dirs).sum(-1, keepdim=True)
    return dirs * torch.rsqrt(sq.clamp_min(1e-30))


def eval_sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """SH basis values `[..., (degree+1)^2]` at unit directions `dirs [..., 3]`."""
    if not 0 <= degree <= 3:
        raise ValueError(f"SH degree must be 0..3, got {degree}")
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, C0)]
    if degree >= 1:
        out += [-C1 * y, C1 * z, -C1 * x]
    if degree >= 2:
        z2 = z * z
        c1 = x * x - y * y  # cos(2 phi) * sin^2
        s1 = 2.0 * x * y  # sin(2 phi) * sin^2
        out += [
            C2_HALF * s1,
            -C2_XY * z * y,
            C2_Z2 * z2 - C2_OFF,
            -C2_XY * z * x,
            C2_HALF * c1,
        ]
    if degree >= 3:
        c2 = x * c1 - y * s1
        s2 = x * s1 + y * c1
        tc = -C3_C2 * z2 + C3_C0
        tb = C3_B * z
        out += [
            -C3_A * s2,
            tb * s1,
            tc * y,
            z * (C3_D2 * z2 - C3_D0),
            tc * x,
            tb * c1,
            -C3_A * c2,
        ]
    return torch.stack(out, dim=-1)


def spherical_harmonics(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Evaluate SH `coeffs [..., K, 3]` (K >= (degree+1)^2) along `dirs [..., 3]` (any length) -> `[..., 3]`."""
    n = num_bases(degree)
    if coeffs.shape[-2] < n:
        raise ValueError(f"SH degree {degree} needs {n} coefficients, got {coeffs.shape[-2]}")
    if degree == 0:
        return C0 * coeffs[..., 0, :]
    bases = eval_sh_bases(degree, normalize_dirs(dirs))  # [..., n]
    return (bases[..., None] * coeffs[..., :n, :]).sum(dim=-2)


def camera_centres(viewmats: Tensor) -> Tensor:
    """Camera centres in world space `[C, 3]` from world-to-camera `viewmats [C, 4, 4]`."""
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
    return -(R.transpose(-1, -2) @ t[..., None])[..., 0]


def sh_colors(means: Tensor, sh_coeffs: Tensor, degree: int, viewmats: Tensor) -> Tensor:
    """View-dependent colour `[C, N, 3]` of Gaussians `means [N, 3]`, `sh_coeffs [N, K, 3]` from C cameras."""
    campos = camera_centres(viewmats)  # [C, 3]
    n = num_bases(degree)
    if sh_coeffs.shape[-2] < n:
        raise ValueError(f"SH degree {degree} needs {n} coefficients, got {sh_coeffs.shape[-2]}")
    if degree == 0:
        rgb = (C0 * sh_coeffs[None, :, 0, :]).expand(viewmats.shape[0], -1, -1)  # [C, N, 3]
    else:
        dirs = means[None, :, :] - campos[:, None, :]  # [C, N, 3]
        bases = eval_sh_bases(degree, normalize_dirs(dirs))  # [C, N, n]
        rgb = torch.einsum("cnk,nkd->cnd", bases, sh_coeffs[:, :n, :])  # [C, N, 3]
    return torch.clamp_min(rgb + 0.5, 0.0)
