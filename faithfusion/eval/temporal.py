"""Video-fixer measures: temporal warp error, faithfulness in low-EIG pixels, depth abs rel.

Warp error (temporal consistency): each frame t+1 is explained by frame t warped with the ground-truth
depth of frame t+1 and the two camera poses; the error is the mean absolute colour difference over the
pixels whose warp is valid (ground-truth depth > 0, in view, not occluded: the depth of frame t at the
landing point agrees with the warped depth within `occlusion_tol`). Pixel centres are at (i + 0.5, j + 0.5)
in the intrinsics' pixel units, as in gsplat and the project's rasterizer. Depths are z-depths in metres;
poses are camera-to-world in metres (OpenCV axes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _backwarp(src: Tensor, src_depth: Tensor, dst_depth: Tensor, k_src: Tensor, k_dst: Tensor,
              c2w_src: Tensor, c2w_dst: Tensor, occlusion_tol: float) -> tuple[Tensor, Tensor]:
    """`src [H, W, C]` seen from the destination camera -> (warped [H, W, C], valid [H, W] bool)."""
    h, w = dst_depth.shape
    dev, dt = dst_depth.device, torch.float64
    v, u = torch.meshgrid(torch.arange(h, device=dev, dtype=dt) + 0.5, torch.arange(w, device=dev, dtype=dt) + 0.5,
                          indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], -1)  # [H, W, 3]
    z = dst_depth.to(dt)
    cam = (pix @ torch.linalg.inv(k_dst.to(dt)).T) * z[..., None]  # [H, W, 3] destination camera frame
    dst_to_src = torch.linalg.inv(c2w_src.to(dt)) @ c2w_dst.to(dt)  # [4, 4]
    p = cam @ dst_to_src[:3, :3].T + dst_to_src[:3, 3]  # [H, W, 3] source camera frame
    zs = p[..., 2]
    uv = (p @ k_src.to(dt).T)[..., :2] / zs.clamp_min(1e-9)[..., None]  # [H, W, 2] source pixels
    grid = torch.stack([uv[..., 0] / w * 2 - 1, uv[..., 1] / h * 2 - 1], -1).to(src.dtype)[None]  # [1, H, W, 2]
    warped = F.grid_sample(src.permute(2, 0, 1)[None], grid, mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    seen = F.grid_sample(src_depth[None, None].to(src.dtype), grid, mode="nearest", align_corners=False)[0, 0]
    inside = (uv[..., 0] >= 0) & (uv[..., 0] <= w) & (uv[..., 1] >= 0) & (uv[..., 1] <= h)
    valid = (z > 0) & (zs > 0) & inside & (seen > 0) & ((seen.to(dt) - zs).abs() <= occlusion_tol * zs)
    return warped, valid


def warp_error(frames: Tensor, depth: Tensor, K: Tensor, camtoworld: Tensor, occlusion_tol: float = 0.05) -> dict[str, float]:
    """Mean |frame[t+1] - warp(frame[t])| over valid pixels of all consecutive pairs.

    frames [T, H, W, 3] in [0, 1]; depth [T, H, W] ground-truth z-depth in metres (0 = none, e.g. sky);
    K [T, 3, 3]; camtoworld [T, 4, 4] in metres. Returns the error and the valid fraction of the pixels."""
    t = frames.shape[0]
    if t < 2:
        raise ValueError("warp_error needs at least two frames")
    if not (depth.shape[:1] == K.shape[:1] == camtoworld.shape[:1] == (t,)) or depth.shape[1:] != frames.shape[1:3]:
        raise ValueError(f"shapes disagree: frames {tuple(frames.shape)}, depth {tuple(depth.shape)}, K {tuple(K.shape)}, "
                         f"camtoworld {tuple(camtoworld.shape)}")
    total, count = 0.0, 0
    for a in range(t - 1):
        warped, valid = _backwarp(frames[a], depth[a], depth[a + 1], K[a], K[a + 1], camtoworld[a], camtoworld[a + 1],
                                  occlusion_tol)
        diff = (frames[a + 1] - warped).abs().mean(-1)  # [H, W]
        total += float(diff[valid].sum())
        count += int(valid.sum())
    pixels = (t - 1) * frames.shape[1] * frames.shape[2]
    return {"warp_error": total / max(count, 1), "valid_fraction": count / pixels}


def low_eig_change(fixed: Tensor, render: Tensor, eig: Tensor, quantile: float = 0.5) -> float:
    """Mean |fixed - render| over the pixels whose EIG is at most its `quantile` (per window): how much a
    fixer changes what the reconstruction already knows. fixed, render [T, H, W, 3]; eig [T, H, W]."""
    thr = torch.quantile(eig.flatten().float(), quantile)
    low = eig <= thr  # [T, H, W]
    return float((fixed - render).abs().mean(-1)[low].mean())


def abs_rel(pred: Tensor, gt: Tensor) -> float:
    """Mean |pred - gt| / gt over pixels with ground truth (gt > 0). pred, gt [..., H, W] metres."""
    m = gt > 0
    if not bool(m.any()):
        raise ValueError("abs_rel: no pixel has ground-truth depth")
    return float(((pred[m] - gt[m]).abs() / gt[m]).mean())
