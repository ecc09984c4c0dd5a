"""`pixel.gaussian_variance` as one Triton kernel over the view's tile lists (cut at the kernel block, `kernel_config.py`).

One program per (tile, sub-block of `block x block` pixels), walking the tile's depth-sorted list front to back
in batches of `batch` Gaussians with the blending rules of the Fisher kernel (`triton_pairs._walk_batch`):

  pass 1  the pixel's final colour sum_i w_i f_i (+ T_final bg) and how many batches it needs;
  pass 2  the same walk again; per pair the colour derivatives D_k = T_front f_k - S_k / (1 - alpha), the
          slope s = -alpha (0 where clamped, skipped or stopped) and phi = dsigma/d(mean2d, conic), -1/o, and
          with v = s phi and Gaussian i's posterior covariance P_i of its view quantities (`pixel.posterior_u`)

              Var_p += w^2 tr(P_cc) + sum_k D_k^2 v^T P_gg v + 2 D_k w v^T P_gc[:, k]

P_i is read as 40 numbers per Gaussian (P_gg's upper triangle, P_gc, tr P_cc: `pack_posterior`). Each pixel
belongs to one program, so the images are written once, no atomics. Per pixel: Var_p (Gaussians), the number of
blended Gaussians and 1 - T_final, i.e. the `[H, W, 3]` of `pixel.gaussian_variance_torch`.
"""

from __future__ import annotations

import torch
from torch import Tensor

import triton
import triton.language as tl

from faithfusion.eig.kernel_config import KernelConfig
from faithfusion.eig.triton_pairs import _TRI, _block_setup, _final_colour, _per_pixel, _walk_batch, prepare_launch
from faithfusion.render.raster import TileLists

N_P = 40  # P_gg upper triangle (21, `triton_pairs._TRI` order), P_gc (18, row u * 3 + k), tr P_cc (1)
N_IMG = 3  # variance, count, alpha


def pack_posterior(P: Tensor) -> Tensor:
    """`[N, 9, 9]` -> `[N, 40]` as the kernel reads it (off-diagonal P_gg entries doubled: each appears twice)."""
    iu = torch.tensor([u for u, _ in _TRI], device=P.device)
    iv = torch.tensor([v for _, v in _TRI], device=P.device)
    tri = P[:, iu, iv] * torch.where(iu == iv, 1.0, 2.0).to(P)  # [N, 21]
    gc = P[:, :6, 6:].reshape(P.shape[0], 18)
    tr = torch.diagonal(P[:, 6:, 6:], dim1=-2, dim2=-1).sum(-1, keepdim=True)
    return torch.cat([tri, gc, tr], -1).contiguous()


@triton.jit
def _pixel_variance_kernel(
    gd_ptr,  # [N, 9] mean2d (2), conic (3), opacity, colour (3)
    p_ptr,  # [N, 40] packed posterior of u (`pack_posterior`)
    offsets_ptr,  # [n_tiles + 1] int32
    ids_ptr,  # [n_isects] int32 Gaussian ids, front to back per tile
    bg_ptr,  # [H, W, 3] (unused without HAS_BG)
    out_ptr,  # [H, W, 3]
    consts_ptr,  # [3] alpha threshold, max alpha, T stop
    width, height, tiles_x,
    TILE: tl.constexpr, BS: tl.constexpr, G: tl.constexpr, HAS_BG: tl.constexpr,
):
    (inside, pix, fx, fy, start, end, n_batches, ALPHA_MIN, ALPHA_MAX, T_STOP_C) = _block_setup(
        gd_ptr, offsets_ptr, consts_ptr, width, height, tiles_x, TILE, BS, G)
    zero = fx * 0.0
    # --- pass 1: final colour per pixel ---
    c0, c1, c2, count, n_used, T_final = _final_colour(ids_ptr, gd_ptr, bg_ptr, pix, inside, fx, fy, start, end, n_batches,
                                                      G, T_STOP_C, ALPHA_MIN, ALPHA_MAX, HAS_BG, True)

    # --- pass 2: per pair, the variance the Gaussian's posterior puts on the pixel ---
    logT = zero
    stopped = tl.where(inside, 0, 1)
    a0 = zero  # colour blended in front of the batch
    a1 = zero
    a2 = zero
    var = zero
    bb = n_used * 0
    while bb < n_used:
        (gid, kv, dx, dy, raw, alpha, T_front, w, ca, cb, cc, op, f0, f1, f2, logT, stopped) = _walk_batch(
            ids_ptr, gd_ptr, start + bb * G, end, fx, fy, logT, stopped, G, T_STOP_C, ALPHA_MIN, ALPHA_MAX)
        wf0 = tl.cumsum(w * f0[None, :], axis=1)
        wf1 = tl.cumsum(w * f1[None, :], axis=1)
        wf2 = tl.cumsum(w * f2[None, :], axis=1)
        inv = 1.0 / (1.0 - alpha)
        D0 = T_front * f0[None, :] + (a0[:, None] + wf0 - c0[:, None]) * inv
        D1 = T_front * f1[None, :] + (a1[:, None] + wf1 - c1[:, None]) * inv
        D2 = T_front * f2[None, :] + (a2[:, None] + wf2 - c2[:, None]) * inv
        a0 += tl.sum(w * f0[None, :], axis=1)
        a1 += tl.sum(w * f1[None, :], axis=1)
        a2 += tl.sum(w * f2[None, :], axis=1)
        s = tl.where(raw < ALPHA_MAX, -alpha, 0.0)
        # v = s phi: rows 0..4 at the pixel, row 5 = s (-1/o)
        v0 = s * -(ca[None, :] * dx + cb[None, :] * dy)
        v1 = s * -(cb[None, :] * dx + cc[None, :] * dy)
        v2 = s * 0.5 * dx * dx
        v3 = s * dx * dy
        v4 = s * 0.5 * dy * dy
        v5 = s * (-1.0 / tl.maximum(op, 1e-12))[None, :]
        pb = p_ptr + gid * 40
        # v^T P_gg v = sum_u v_u (sum_{v >= u} P'_uv v_v), P' the off-diagonal-doubled upper triangle
        r0 = (tl.load(pb + 0, mask=kv, other=0.0)[None, :] * v0 + tl.load(pb + 1, mask=kv, other=0.0)[None, :] * v1
              + tl.load(pb + 2, mask=kv, other=0.0)[None, :] * v2 + tl.load(pb + 3, mask=kv, other=0.0)[None, :] * v3
              + tl.load(pb + 4, mask=kv, other=0.0)[None, :] * v4 + tl.load(pb + 5, mask=kv, other=0.0)[None, :] * v5)
        r1 = (tl.load(pb + 6, mask=kv, other=0.0)[None, :] * v1 + tl.load(pb + 7, mask=kv, other=0.0)[None, :] * v2
              + tl.load(pb + 8, mask=kv, other=0.0)[None, :] * v3 + tl.load(pb + 9, mask=kv, other=0.0)[None, :] * v4
              + tl.load(pb + 10, mask=kv, other=0.0)[None, :] * v5)
        r2 = (tl.load(pb + 11, mask=kv, other=0.0)[None, :] * v2 + tl.load(pb + 12, mask=kv, other=0.0)[None, :] * v3
              + tl.load(pb + 13, mask=kv, other=0.0)[None, :] * v4 + tl.load(pb + 14, mask=kv, other=0.0)[None, :] * v5)
        r3 = (tl.load(pb + 15, mask=kv, other=0.0)[None, :] * v3 + tl.load(pb + 16, mask=kv, other=0.0)[None, :] * v4
              + tl.load(pb + 17, mask=kv, other=0.0)[None, :] * v5)
        r4 = tl.load(pb + 18, mask=kv, other=0.0)[None, :] * v4 + tl.load(pb + 19, mask=kv, other=0.0)[None, :] * v5
        r5 = tl.load(pb + 20, mask=kv, other=0.0)[None, :] * v5
        qgg = v0 * r0 + v1 * r1 + v2 * r2 + v3 * r3 + v4 * r4 + v5 * r5
        # v^T P_gc[:, k] per channel
        x0 = (v0 * tl.load(pb + 21, mask=kv, other=0.0)[None, :] + v1 * tl.load(pb + 24, mask=kv, other=0.0)[None, :]
              + v2 * tl.load(pb + 27, mask=kv, other=0.0)[None, :] + v3 * tl.load(pb + 30, mask=kv, other=0.0)[None, :]
              + v4 * tl.load(pb + 33, mask=kv, other=0.0)[None, :] + v5 * tl.load(pb + 36, mask=kv, other=0.0)[None, :])
        x1 = (v0 * tl.load(pb + 22, mask=kv, other=0.0)[None, :] + v1 * tl.load(pb + 25, mask=kv, other=0.0)[None, :]
              + v2 * tl.load(pb + 28, mask=kv, other=0.0)[None, :] + v3 * tl.load(pb + 31, mask=kv, other=0.0)[None, :]
              + v4 * tl.load(pb + 34, mask=kv, other=0.0)[None, :] + v5 * tl.load(pb + 37, mask=kv, other=0.0)[None, :])
        x2 = (v0 * tl.load(pb + 23, mask=kv, other=0.0)[None, :] + v1 * tl.load(pb + 26, mask=kv, other=0.0)[None, :]
              + v2 * tl.load(pb + 29, mask=kv, other=0.0)[None, :] + v3 * tl.load(pb + 32, mask=kv, other=0.0)[None, :]
              + v4 * tl.load(pb + 35, mask=kv, other=0.0)[None, :] + v5 * tl.load(pb + 38, mask=kv, other=0.0)[None, :])
        trc = tl.load(pb + 39, mask=kv, other=0.0)[None, :]
        pair = (w * w * trc + (D0 * D0 + D1 * D1 + D2 * D2) * qgg
                + 2.0 * w * (D0 * x0 + D1 * x1 + D2 * x2))
        var += tl.sum(tl.where(alpha > 0.0, pair, 0.0), axis=1)
        bb += 1
    o = out_ptr + pix * 3
    tl.store(o + 0, var, mask=inside)
    tl.store(o + 1, count, mask=inside)
    tl.store(o + 2, 1.0 - T_final, mask=inside)


def pixel_variance_raw(
    means2d: Tensor,  # [N, 2]
    conics: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, 3]
    P: Tensor,  # [N, 9, 9] posterior covariance of u per Gaussian
    tl_lists: TileLists,  # one camera
    width: int,
    height: int,
    background: Tensor | None = None,  # [3] or [H, W, 3]
    config: KernelConfig | None = None,
) -> Tensor:
    """Per pixel `[H, W, 3]`: sum_i sum_k g_pik^T P_i g_pik, the number of blended Gaussians, accumulated alpha."""
    gd = torch.cat([means2d, conics, opacities[:, None], colors], -1).contiguous()  # [N, 9]
    out = gd.new_zeros(height, width, N_IMG)
    launch = prepare_launch(tl_lists, gd, config)
    if launch is None:
        return out
    bg = _per_pixel(background, height, width, 3, gd)
    _pixel_variance_kernel[(launch.n_programs,)](
        gd, pack_posterior(P.to(gd)), launch.offsets, launch.ids, bg if bg is not None else gd, out, launch.consts,
        width, height, tl_lists.tiles_x,
        TILE=tl_lists.tile_size, BS=launch.block, G=launch.batch, HAS_BG=bg is not None,
        num_warps=launch.warps,
    )
    return out
