"""`maps.composite_scalar` as one Triton kernel over the view's tile lists (cut at the kernel block, `kernel_config.py`).

One program per (tile, sub-block of `block x block` pixels); the tile's depth-sorted Gaussian list is walked
front to back in batches of `batch` Gaussians with the same blending rules as the Fisher kernel
(`triton_pairs._walk_batch`: alpha = min(0.999, o exp(-sigma)), alpha < 1/255 skipped, the pixel stops before
the Gaussian whose transmittance would be <= 1e-4). Per pixel it writes

    sum_i w_i v_i,   sum_i w_i^2 v_i,   #{i : alpha_i > 0},   1 - T_final

for a per-Gaussian scalar v (the EIG acquisition), i.e. the four images of `maps.PixelSums`. One pass, no
atomics: each pixel belongs to exactly one program.
"""

from __future__ import annotations

import torch
from torch import Tensor

import triton
import triton.language as tl

from faithfusion.eig.triton_pairs import _block_setup, _walk_batch, prepare_launch
from faithfusion.render.raster import TileLists

N_IMG = 4  # wI, w2I, count, alpha


@triton.jit
def _composite_kernel(
    gd_ptr,  # [N, 9] mean2d (2), conic (3), opacity, colour (3: unused here)
    val_ptr,  # [N] the per-Gaussian value
    offsets_ptr,  # [n_tiles + 1] int32
    ids_ptr,  # [n_isects] int32 Gaussian ids, front to back per tile
    out_ptr,  # [H, W, 4]
    consts_ptr,  # [3] alpha threshold, max alpha, T stop
    width, height, tiles_x,
    TILE: tl.constexpr, BS: tl.constexpr, G: tl.constexpr,
):
    (inside, pix, fx, fy, start, end, n_batches, ALPHA_MIN, ALPHA_MAX, T_STOP_C) = _block_setup(
        gd_ptr, offsets_ptr, consts_ptr, width, height, tiles_x, TILE, BS, G)
    zero = fx * 0.0
    logT = zero
    stopped = tl.where(inside, 0, 1)
    wI = zero
    w2I = zero
    count = zero
    b = n_batches * 0
    go = n_batches > 0
    while go:
        (gid, kv, dx, dy, raw, alpha, T_front, w, ca, cb, cc, op, f0, f1, f2, logT, stopped) = _walk_batch(
            ids_ptr, gd_ptr, start + b * G, end, fx, fy, logT, stopped, G, T_STOP_C, ALPHA_MIN, ALPHA_MAX)
        v = tl.load(val_ptr + gid, mask=kv, other=0.0)
        wI += tl.sum(w * v[None, :], axis=1)
        w2I += tl.sum(w * w * v[None, :], axis=1)
        count += tl.sum(tl.where(alpha > 0.0, 1.0, 0.0), axis=1)
        b += 1
        go = (b < n_batches) & (tl.min(stopped, axis=0) == 0)
    o = out_ptr + pix * 4
    tl.store(o + 0, wI, mask=inside)
    tl.store(o + 1, w2I, mask=inside)
    tl.store(o + 2, count, mask=inside)
    tl.store(o + 3, 1.0 - tl.exp(logT), mask=inside)


def composite_raw(
    means2d: Tensor,  # [N, 2]
    conics: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    values: Tensor,  # [N]
    tl_lists: TileLists,  # one camera
    width: int,
    height: int,
    config: tuple[int, int, int] | None = None,
) -> Tensor:
    """Per pixel `[H, W, 4]`: sum w v, sum w^2 v, the number of blended Gaussians, accumulated alpha."""
    N = means2d.shape[0]
    gd = torch.cat([means2d, conics, opacities[:, None], means2d.new_zeros(N, 3)], -1).contiguous()  # [N, 9]
    out = gd.new_zeros(height, width, N_IMG)
    launch = prepare_launch(tl_lists, gd, config)
    if launch is None:
        return out
    _composite_kernel[(launch.n_programs,)](
        gd, values.to(gd).contiguous(), launch.offsets, launch.ids, out, launch.consts,
        width, height, tl_lists.tiles_x,
        TILE=tl_lists.tile_size, BS=launch.block, G=launch.batch, num_warps=launch.warps,
    )
    return out
