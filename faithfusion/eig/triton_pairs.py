"""The Fisher's pair loop (`fisher.pair_sums`) as one Triton kernel over the view's tile lists.

One program per (tile, sub-block of `block x block` pixels), the pixels vectorised across the program
(by default the lists are built over `block x block` tiles, so a program walks only its own pixels' list),
the tile's depth-sorted Gaussian list walked front to back in batches of `batch` Gaussians (a `[P, G]`
tile of pairs per step; the transmittance inside a batch is an exp(cumsum(log(1 - alpha))) scan along
G, carried between batches, as `blend.blend_pairs` computes it):

  pass 1  the pixel's final colour sum_i w_i f_i and transmittance T_final (and how many batches are
          needed before every pixel of the block has stopped);
  pass 2  the same walk again; per pair the colour derivatives D_k = T_front f_k - S_k / (1 - alpha)
          with S_k = total_k - (colour blended up to and including i), the slope s = -alpha (0 where
          alpha is clamped at 0.999, skipped or stopped), and phi = dsigma/d(mean2d, conic) at the
          pixel; each Gaussian's 40 entries of M (geo 6x6 upper triangle, cross 6x3, w2) are summed
          over the block's pixels with tl.sum and added to global memory with one atomic per Gaussian
          per block per entry (never per pixel), and none for a Gaussian that no pixel of the block blends.

Rules as `blend.py` / the torch backend / gsplat: sigma = 0.5 (a dx^2 + c dy^2) + b dx dy at pixel centres,
alpha = min(0.999, o exp(-sigma)), alpha < 1/255 skipped, a pixel stops before the Gaussian whose
transmittance would be <= 1e-4, background per pixel (or none) and per-pixel weights omega.

The -1/o column of phi is constant per Gaussian, so the kernel sums W1 phi_u phi_v, W1 phi_u, W1 (u, v
over the 5 pixel-dependent rows) and scales by -1/o afterwards, as `fisher._apply_phi` does.

Runs on CUDA, or on the CPU in Triton's interpreter (TRITON_INTERPRET=1 set before this module is
imported: tests). Tunables: `kernel_config.py` (`FAITHFUSION_EIG_TRITON="block,batch,warps[,tile]"`, default
`kernel_config.DEFAULT`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

import triton
import triton.language as tl

from faithfusion.eig.kernel_config import KernelConfig, default_config
from faithfusion.render.raster import ALPHA_THRESHOLD, MAX_ALPHA, T_STOP, TileLists

N_OUT = 40  # geo upper triangle (21), cross (18, row u * 3 + k), w2 (1)
_TRI = [(u, v) for u in range(6) for v in range(u, 6)]


@triton.jit
def _walk_batch(ids_ptr, gd_ptr, k0, end, fx, fy, logT, stopped, G: tl.constexpr, T_STOP_C, ALPHA_MIN, ALPHA_MAX):
    """One batch of G list slots against the block's pixels: Gaussian data and the blended pairs `[P, G]`."""
    k = k0 + tl.arange(0, G)
    kv = k < end
    gid = tl.load(ids_ptr + k, mask=kv, other=0)
    base = gd_ptr + gid * 9
    mx = tl.load(base + 0, mask=kv, other=0.0)
    my = tl.load(base + 1, mask=kv, other=0.0)
    ca = tl.load(base + 2, mask=kv, other=0.0)
    cb = tl.load(base + 3, mask=kv, other=0.0)
    cc = tl.load(base + 4, mask=kv, other=0.0)
    op = tl.load(base + 5, mask=kv, other=0.0)  # 0 on padding: alpha 0
    f0 = tl.load(base + 6, mask=kv, other=0.0)
    f1 = tl.load(base + 7, mask=kv, other=0.0)
    f2 = tl.load(base + 8, mask=kv, other=0.0)
    dx = fx[:, None] - mx[None, :]  # [P, G] pixel centre - mean
    dy = fy[:, None] - my[None, :]
    sig = 0.5 * (ca[None, :] * dx * dx + cc[None, :] * dy * dy) + cb[None, :] * dx * dy
    raw = op[None, :] * tl.exp(-sig)
    alpha = tl.where(raw >= ALPHA_MIN, tl.minimum(raw, ALPHA_MAX), 0.0)
    l1m = tl.log(1.0 - alpha)
    T_un = tl.exp(logT[:, None] + tl.cumsum(l1m, axis=1))  # transmittance behind, before the stop
    live = (stopped[:, None] == 0) & (T_un > T_STOP_C)
    alpha = tl.where(live, alpha, 0.0)
    l1m = tl.where(live, l1m, 0.0)
    cs = tl.cumsum(l1m, axis=1)
    T_front = tl.exp(logT[:, None] + (cs - l1m))
    w = alpha * T_front
    stopped = tl.where(tl.min(T_un, axis=1) <= T_STOP_C, 1, stopped)  # T_un never rises along G
    logT = logT + tl.sum(l1m, axis=1)
    return (gid, kv, dx, dy, raw, alpha, T_front, w, ca, cb, cc, op, f0, f1, f2, logT, stopped)


@triton.jit
def _block_setup(gd_ptr, offsets_ptr, consts_ptr, width, height, tiles_x, TILE: tl.constexpr, BS: tl.constexpr,
                 G: tl.constexpr):
    """This program's pixels (one `BS x BS` block of a tile), their centres, its tile's list range and the
    blending constants; shared by every kernel that walks the tile lists."""
    NSUB: tl.constexpr = (TILE // BS) * (TILE // BS)
    pid = tl.program_id(0)
    tile = pid // NSUB
    sub = pid % NSUB
    tx = tile % tiles_x
    ty = tile // tiles_x
    sx = sub % (TILE // BS)
    sy = sub // (TILE // BS)
    p = tl.arange(0, BS * BS)
    px = tx * TILE + sx * BS + p % BS
    py = ty * TILE + sy * BS + p // BS
    inside = (px < width) & (py < height)
    pix = py * width + px
    fx = px.to(gd_ptr.dtype.element_ty) + 0.5
    fy = py.to(gd_ptr.dtype.element_ty) + 0.5
    alpha_min = tl.load(consts_ptr + 0)
    alpha_max = tl.load(consts_ptr + 1)
    t_stop = tl.load(consts_ptr + 2)
    start = tl.load(offsets_ptr + tile)
    end = tl.load(offsets_ptr + tile + 1)
    n_batches = tl.cdiv(end - start, G)
    return inside, pix, fx, fy, start, end, n_batches, alpha_min, alpha_max, t_stop


@triton.jit
def _final_colour(ids_ptr, gd_ptr, bg_ptr, pix, inside, fx, fy, start, end, n_batches, G: tl.constexpr, T_STOP_C,
                  ALPHA_MIN, ALPHA_MAX, HAS_BG: tl.constexpr, COUNT: tl.constexpr):
    """Pass 1 of the pair kernels: each pixel's final colour sum_i w_i f_i (+ T_final bg) `[BS]` x 3, the number
    of Gaussians with alpha > 0 (only with COUNT, else 0), the batches the block needs and T_final."""
    zero = fx * 0.0
    logT = zero
    stopped = tl.where(inside, 0, 1)
    c0 = zero
    c1 = zero
    c2 = zero
    count = zero
    b = n_batches * 0
    go = n_batches > 0
    while go:
        (gid, kv, dx, dy, raw, alpha, T_front, w, ca, cb, cc, op, f0, f1, f2, logT, stopped) = _walk_batch(
            ids_ptr, gd_ptr, start + b * G, end, fx, fy, logT, stopped, G, T_STOP_C, ALPHA_MIN, ALPHA_MAX)
        c0 += tl.sum(w * f0[None, :], axis=1)
        c1 += tl.sum(w * f1[None, :], axis=1)
        c2 += tl.sum(w * f2[None, :], axis=1)
        if COUNT:
            count += tl.sum(tl.where(alpha > 0.0, 1.0, 0.0), axis=1)
        b += 1
        go = (b < n_batches) & (tl.min(stopped, axis=0) == 0)
    T_final = tl.exp(logT)
    if HAS_BG:
        c0 += T_final * tl.load(bg_ptr + pix * 3 + 0, mask=inside, other=0.0)
        c1 += T_final * tl.load(bg_ptr + pix * 3 + 1, mask=inside, other=0.0)
        c2 += T_final * tl.load(bg_ptr + pix * 3 + 2, mask=inside, other=0.0)
    return c0, c1, c2, count, b, T_final


@triton.jit
def _pair_sums_kernel(
    gd_ptr,  # [N, 9] mean2d (2), conic (3), opacity, colour (3)
    offsets_ptr,  # [n_tiles + 1] int32
    ids_ptr,  # [n_isects] int32 Gaussian ids, front to back per tile
    omega_ptr,  # [H, W]
    bg_ptr,  # [H, W, 3] (unused without HAS_BG)
    out_ptr,  # [N, 40] accumulated
    consts_ptr,  # [3] alpha threshold, max alpha, T stop in the data's dtype (constexpr floats would be float32)
    width, height, tiles_x,
    TILE: tl.constexpr, BS: tl.constexpr, G: tl.constexpr, HAS_BG: tl.constexpr,
):
    (inside, pix, fx, fy, start, end, n_batches, ALPHA_MIN, ALPHA_MAX, T_STOP_C) = _block_setup(
        gd_ptr, offsets_ptr, consts_ptr, width, height, tiles_x, TILE, BS, G)

    zero = fx * 0.0
    # --- pass 1: final colour and transmittance per pixel ---
    c0, c1, c2, count, n_used, T_final = _final_colour(ids_ptr, gd_ptr, bg_ptr, pix, inside, fx, fy, start, end, n_batches,
                                                      G, T_STOP_C, ALPHA_MIN, ALPHA_MAX, HAS_BG, False)
    om = tl.load(omega_ptr + pix, mask=inside, other=0.0)

    # --- pass 2: per pair, the gradient blocks, reduced over the block's pixels ---
    logT = zero
    stopped = tl.where(inside, 0, 1)
    a0 = zero  # colour blended in front of the batch
    a1 = zero
    a2 = zero
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
        sw = s * om[:, None]
        W1 = sw * s * (D0 * D0 + D1 * D1 + D2 * D2)
        sww = sw * w
        W3 = om[:, None] * w * w
        # phi rows 0..4 at the pixel: dsigma / d(mx, my, a, b, c)
        p0 = -(ca[None, :] * dx + cb[None, :] * dy)
        p1 = -(cb[None, :] * dx + cc[None, :] * dy)
        p2 = 0.5 * dx * dx
        p3 = dx * dy
        p4 = 0.5 * dy * dy
        r5 = -1.0 / tl.maximum(op, 1e-12)  # phi row 5 (-1/o), per Gaussian
        o_ptr = out_ptr + gid * 40
        kv = kv & (tl.max(alpha, axis=0) > 0.0)  # no atomics for Gaussians no pixel of the block blends
        # geo upper triangle, rows u <= v over (p0..p4, r5), index as fisher's _TRI order
        q0 = W1 * p0
        q1 = W1 * p1
        q2 = W1 * p2
        q3 = W1 * p3
        q4 = W1 * p4
        tl.atomic_add(o_ptr + 0, tl.sum(q0 * p0, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 1, tl.sum(q0 * p1, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 2, tl.sum(q0 * p2, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 3, tl.sum(q0 * p3, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 4, tl.sum(q0 * p4, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 5, tl.sum(q0, axis=0) * r5, mask=kv)
        tl.atomic_add(o_ptr + 6, tl.sum(q1 * p1, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 7, tl.sum(q1 * p2, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 8, tl.sum(q1 * p3, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 9, tl.sum(q1 * p4, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 10, tl.sum(q1, axis=0) * r5, mask=kv)
        tl.atomic_add(o_ptr + 11, tl.sum(q2 * p2, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 12, tl.sum(q2 * p3, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 13, tl.sum(q2 * p4, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 14, tl.sum(q2, axis=0) * r5, mask=kv)
        tl.atomic_add(o_ptr + 15, tl.sum(q3 * p3, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 16, tl.sum(q3 * p4, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 17, tl.sum(q3, axis=0) * r5, mask=kv)
        tl.atomic_add(o_ptr + 18, tl.sum(q4 * p4, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 19, tl.sum(q4, axis=0) * r5, mask=kv)
        tl.atomic_add(o_ptr + 20, tl.sum(W1, axis=0) * r5 * r5, mask=kv)
        # cross: row u, channel k at 21 + 3 u + k
        e0 = sww * D0
        e1 = sww * D1
        e2 = sww * D2
        tl.atomic_add(o_ptr + 21, tl.sum(e0 * p0, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 22, tl.sum(e1 * p0, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 23, tl.sum(e2 * p0, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 24, tl.sum(e0 * p1, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 25, tl.sum(e1 * p1, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 26, tl.sum(e2 * p1, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 27, tl.sum(e0 * p2, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 28, tl.sum(e1 * p2, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 29, tl.sum(e2 * p2, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 30, tl.sum(e0 * p3, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 31, tl.sum(e1 * p3, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 32, tl.sum(e2 * p3, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 33, tl.sum(e0 * p4, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 34, tl.sum(e1 * p4, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 35, tl.sum(e2 * p4, axis=0), mask=kv)
        tl.atomic_add(o_ptr + 36, tl.sum(e0, axis=0) * r5, mask=kv)
        tl.atomic_add(o_ptr + 37, tl.sum(e1, axis=0) * r5, mask=kv)
        tl.atomic_add(o_ptr + 38, tl.sum(e2, axis=0) * r5, mask=kv)
        tl.atomic_add(o_ptr + 39, tl.sum(W3, axis=0), mask=kv)
        bb += 1


@dataclass
class Launch:
    """What every tile-list kernel gets: int32 list offsets and Gaussian ids, the blending constants in the
    data's dtype, the grid size and the (block, batch, warps) configuration."""

    offsets: Tensor  # [n_tiles + 1] int32
    ids: Tensor  # [n_isects] int32
    consts: Tensor  # [3] alpha threshold, max alpha, T stop
    n_programs: int
    block: int
    batch: int
    warps: int


def prepare_launch(tl_lists: TileLists, like: Tensor, config: KernelConfig | None = None) -> Launch | None:
    """Check one camera's tile lists against the configuration and pack them; None when no Gaussian is listed."""
    if tl_lists.n_cameras != 1:
        raise ValueError("the tile-list kernels work on one camera at a time")
    block, batch, warps, _ = config or default_config()
    tile = tl_lists.tile_size
    if tile % block:
        raise ValueError(f"block {block} must divide the tile size {tile}")
    if tl_lists.flat_ids.numel() == 0:
        return None
    return Launch(
        offsets=tl_lists.offsets.to(torch.int32).contiguous(),
        ids=(tl_lists.flat_ids % tl_lists.n_gaussians).to(torch.int32).contiguous(),
        consts=torch.tensor([ALPHA_THRESHOLD, MAX_ALPHA, T_STOP], dtype=like.dtype, device=like.device),
        n_programs=tl_lists.n_tiles * (tile // block) ** 2, block=block, batch=batch, warps=warps,
    )


def _per_pixel(x: Tensor | None, height: int, width: int, channels: int | None, like: Tensor) -> Tensor | None:
    if x is None:
        return None
    x = x.to(like)
    if channels is not None and x.dim() == 1:
        x = x.expand(height, width, channels)
    return x.contiguous()


def pair_sums_raw(
    means2d: Tensor,  # [N, 2]
    conics: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, 3]
    tl_lists: TileLists,  # one camera
    width: int,
    height: int,
    pixel_weights: Tensor | None = None,  # [H, W]
    background: Tensor | None = None,  # [3] or [H, W, 3]
    config: KernelConfig | None = None,
) -> Tensor:
    """Per Gaussian `[N, 40]`: M = sum_pixels omega sum_k g_k g_k^T as geo upper triangle (21), cross (18), w2."""
    gd = torch.cat([means2d, conics, opacities[:, None], colors], -1).contiguous()  # [N, 9]
    out = gd.new_zeros(means2d.shape[0], N_OUT)
    launch = prepare_launch(tl_lists, gd, config)
    if launch is None:
        return out
    omega = _per_pixel(pixel_weights, height, width, None, gd)
    if omega is None:
        omega = gd.new_ones(height, width)
    bg = _per_pixel(background, height, width, 3, gd)
    _pair_sums_kernel[(launch.n_programs,)](
        gd, launch.offsets, launch.ids, omega, bg if bg is not None else gd, out, launch.consts,
        width, height, tl_lists.tiles_x,
        TILE=tl_lists.tile_size, BS=launch.block, G=launch.batch, HAS_BG=bg is not None,
        num_warps=launch.warps,
    )
    return out


def unpack(out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """`[V, 40]` -> geo `[V, 6, 6]` (symmetric), cross `[V, 6, 3]`, w2 `[V]`."""
    V = out.shape[0]
    geo = out.new_zeros(V, 6, 6)
    iu = torch.tensor([u for u, _ in _TRI], device=out.device)
    iv = torch.tensor([v for _, v in _TRI], device=out.device)
    geo[:, iu, iv] = out[:, :21]
    geo[:, iv, iu] = out[:, :21]
    cross = out[:, 21:39].reshape(V, 6, 3)
    return geo, cross, out[:, 39]
