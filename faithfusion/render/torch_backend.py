"""The pure-PyTorch rasterizer: gsplat 1.5.3's 3DGS pipeline, chained from `render/raster`'s primitives.

1. `project_gaussians`: EWA projection as gsplat's `fully_fused_projection` (packed=False).
2. `build_tile_lists`: for every 16x16 tile the Gaussians whose screen box touches it, front to back,
   as gsplat's `isect_offsets` / `flatten_ids` (`info["tile_lists"]`, for the Fisher/EIG code).
3. `plan_chunks`: each tile's list cut to its four 8x8 blocks (a Gaussian stays in a block only if its
   screen box, +1 px, reaches it), grouped into padded `[blocks, pixels, K]` chunks.
4. `composite` (here): alpha blending, chunk by chunk.
   Per pixel: sigma = 0.5 (a dx^2 + c dy^2) + b dx dy at the pixel centre (x+0.5, y+0.5),
   alpha = min(0.999, o exp(-sigma)), alpha < 1/255 skipped, front to back, stop before the Gaussian
   that would bring the transmittance to <= 1e-4 (that one excluded), background added as
   (1 - alpha) * bg. The backward pass is written by hand (the algebra of gsplat's kernel, in
   closed form over the chunk) and recomputes each chunk, so memory stays bounded by one chunk.

`rasterize` strings them together with SH colours (`render/sh.py`) and returns the `RenderOutput`
with gsplat's `info` keys, so gsplat's DefaultStrategy runs on it unchanged (`means2d.grad` through
`retain_grad`, `means2d.absgrad` set by the backward pass when `absgrad=True`, as gsplat does).

Differences from gsplat, all at float32 rounding level: log(alpha) is one 6-term polynomial in
block-centred pixel coordinates (a matrix product per chunk) and the transmittance is
exp(cumsum(log(1 - alpha))) rather than a running product, so a Gaussian whose alpha is within ~1e-6
of 1/255 can fall on the other side of the cut (a jump of up to 1/255 at that pixel: a few pixels in
a million at 960x540; our own float32 and float64 differ as much); `sigma < 0` is not tested (it
cannot occur for the positive-definite conics this projection makes); culled entries of
means2d/depths/conics are 0 (gsplat leaves them uninitialised); `log` is exact where gsplat uses
`__logf` (radii can differ by one pixel at a ceil boundary; no effect on the image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from faithfusion.render.output import RenderOutput
from faithfusion.render.raster import (
    ALPHA_THRESHOLD,
    BLOCK_SIZE,
    CHUNK_PAIRS,
    MAX_ALPHA,
    T_STOP,
    TILE_SIZE,
    Chunk,
    TileLists,
    build_tile_lists,
    log_alpha_coefs,
    pixel_quadratics,
    plan_chunks,
    project_gaussians,
)
from faithfusion.render.sh import sh_colors

# --- compositing ----------------------------------------------------------------------------


@dataclass
class _Blend:
    """Per-pair quantities of one chunk `[B, P, K]` (K last: the scans run along it), recomputed in backward."""

    alpha: Tensor  # blended alpha: 0 where below 1/255 or after the stop, clamped at 0.999
    one_minus: Tensor  # 1 - alpha (before the stop)
    T_incl: Tensor  # transmittance behind each Gaussian (= in front of the next one; before the stop)
    weight: Tensor  # alpha * transmittance in front of the Gaussian
    T_final: Tensor  # [B, P] transmittance after the last blended Gaussian


def _blend(mom: Tensor, m: Tensor, conic: Tensor, opac: Tensor) -> _Blend:
    """Front-to-back blending weights of one chunk: gsplat's per-pixel loop, vectorised."""
    coefs = log_alpha_coefs(m, conic, opac)  # [B, K, 6]
    alpha = torch.matmul(mom, coefs.transpose(1, 2)).exp_().clamp_max_(MAX_ALPHA)  # [B, P, K]
    torch.nn.functional.threshold_(alpha, _below(ALPHA_THRESHOLD, alpha.dtype), 0.0)  # alpha < 1/255 skipped
    one_minus = torch.rsub(alpha, 1.0)
    T_incl = torch.log(one_minus).cumsum_(-1).exp_()
    T_final = T_incl[..., -1]
    if bool((T_final <= T_STOP).any()):
        # stop before the Gaussian that would bring T to <= 1e-4; T_incl is non-increasing, so the
        # stopped Gaussians are a suffix. Their alpha becomes 0 (one_minus and T_incl are left as
        # they are there: nothing downstream reads them where alpha = 0).
        live = torch.sign(torch.nn.functional.threshold(T_incl, T_STOP, 0.0))  # 1 live, 0 stopped
        alpha.mul_(live)
        n_live = live.sum(-1, keepdim=True).long()  # >= 1 as alpha <= 0.999
        T_final = T_incl.gather(-1, n_live - 1).squeeze(-1)
    weight = torch.empty_like(alpha)
    weight[..., 0] = alpha[..., 0]
    torch.mul(alpha[..., 1:], T_incl[..., :-1], out=weight[..., 1:])
    return _Blend(alpha, one_minus, T_incl, weight, T_final)


def _below(x: float, dtype: torch.dtype) -> float:
    """The largest `dtype` value below `x`, so that `t > _below(x)` means `t >= x` for threshold_."""
    t = torch.tensor(x, dtype=dtype)
    return torch.nextafter(t, torch.zeros_like(t)).item()


def _pack(means2d: Tensor, conics: Tensor, opacities: Tensor, feats: Tensor) -> Tensor:
    """One row per (camera, Gaussian): mean (2), conic (3), opacity (1), features (D) -> `[C * N, 6 + D]`."""
    return torch.cat([means2d, conics, opacities[..., None], feats], -1).reshape(-1, 6 + feats.shape[-1])


def _gather(chunk: Chunk, packed: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Chunk-local Gaussian data: block-centred means, conics, opacities (0 on padding), features."""
    g = packed.index_select(0, chunk.ids.reshape(-1)).view(*chunk.ids.shape, -1)  # [B, K, 6 + D]
    m = g[..., :2] - chunk.centres[:, None, :]  # [B, K, 2]
    o = g[..., 5] * chunk.valid  # [B, K]
    return m, g[..., 2:5], o, g[..., 6:]


KEEP_BLEND_PAIRS = 1 << 24  # CPU: pair entries ([B, P, K] elements) of forward blends kept for backward (4 floats each)


class _Composite(torch.autograd.Function):
    """Alpha blending of projected Gaussians over tile lists; hand-written backward that recomputes each chunk's
    blend, except (CPU, `keep_pairs` > 0) the first chunks' blends up to `keep_pairs` pair entries, kept from
    the forward pass (the same values: backward no longer blends them twice)."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, feats, grid, chunks, height, width, absgrad, keep_pairs=0):
        C, N, D = feats.shape
        packed = _pack(means2d, conics, opacities, feats)
        mom = pixel_quadratics(grid.size, feats.dtype, feats.device)
        out = feats.new_zeros(grid.n_blocks, mom.shape[0], D)
        T_out = feats.new_ones(grid.n_blocks, mom.shape[0])
        kept: list[_Blend] = []
        for ch in chunks:
            m, conic, o, f = _gather(ch, packed)
            bl = _blend(mom, m, conic, o)
            out[ch.blocks] = torch.matmul(bl.weight, f)  # [B, P, D]
            T_out[ch.blocks] = bl.T_final
            if bl.alpha.numel() > keep_pairs:
                keep_pairs = 0  # budget spent: the rest are recomputed in backward
            else:
                kept.append(bl)
                keep_pairs -= bl.alpha.numel()
        ctx.save_for_backward(means2d, conics, opacities, feats)
        ctx.grid, ctx.chunks, ctx.absgrad, ctx.kept = grid, chunks, absgrad, kept
        ctx.means2d_obj = means2d if absgrad else None  # gsplat stores `.absgrad` on this tensor
        image = grid.from_blocks(out)
        alpha = 1.0 - grid.from_blocks(T_out[..., None])
        return image, alpha

    @staticmethod
    def backward(ctx, g_image, g_alpha):
        means2d, conics, opacities, feats = ctx.saved_tensors
        grid, chunks = ctx.grid, ctx.chunks
        C, N, D = feats.shape
        packed = _pack(means2d, conics, opacities, feats)
        grads = torch.zeros_like(packed)  # [C * N, 6 + D] same layout
        gC_blocks = grid.to_blocks(g_image)  # [n_blocks, P, D]
        gA_blocks = grid.to_blocks(g_alpha)[..., 0]  # [n_blocks, P]
        mom = pixel_quadratics(grid.size, feats.dtype, feats.device)
        g_abs = means2d.new_zeros(C * N, 2) if ctx.absgrad else None
        kept = ctx.kept
        for i, ch in enumerate(chunks):
            m, conic, o, f = _gather(ch, packed)
            bl = kept[i] if i < len(kept) else None
            gm, gc, go, gf, gabs = _blend_backward(mom, m, conic, o, f, gC_blocks[ch.blocks], gA_blocks[ch.blocks], ctx.absgrad,
                                                   bl)
            go = go * ch.valid  # padding slots carry real ids but must add nothing
            g = torch.cat([gm, gc, go[..., None], gf], -1)  # [B, K, 6 + D]
            ids = ch.ids.reshape(-1)
            grads.index_add_(0, ids, g.reshape(-1, g.shape[-1]))
            if gabs is not None:
                g_abs.index_add_(0, ids, gabs.reshape(-1, 2))
        if ctx.absgrad:
            ctx.means2d_obj.absgrad = g_abs.reshape(C, N, 2)
        grads = grads.reshape(C, N, 6 + D)
        return grads[..., :2], grads[..., 2:5], grads[..., 5], grads[..., 6:], None, None, None, None, None, None


def _blend_backward(mom, m, conic, o, f, gC, gA, absgrad: bool, bl: _Blend | None = None):
    """Vector-Jacobian product of one chunk -> grads of (m [B,K,2], conic [B,K,3], o [B,K], f [B,K,D], |dm|);
    `bl` the chunk's blend kept from the forward pass (read only), else recomputed."""
    own = bl is None
    if own:
        bl = _blend(mom, m, conic, o)
    g_f = torch.matmul(bl.weight.transpose(1, 2), gC)  # [B, K, D]
    fg = torch.matmul(gC, f.transpose(1, 2))  # [B, P, K] dL/dcolour . f_k
    # dL/dalpha_k = T_k (f_k.g) - (sum_{j>k} w_j f_j.g - T_final gA) / (1 - alpha_k)
    behind = torch.cumsum(bl.weight * fg, dim=-1)  # [B, P, K] colour blended up to k (. g)
    base = behind[..., -1] - bl.T_final * gA  # [B, P]
    torch.sub(base[..., None], behind, out=behind)
    behind.div_(bl.one_minus)
    fg[..., 1:].mul_(bl.T_incl[..., :-1])
    g_alpha = fg.sub_(behind)
    # dalpha/dsigma = -alpha where blended and not clamped at 0.999, else 0
    neg_alpha = torch.nn.functional.threshold_(bl.alpha.neg_() if own else bl.alpha.neg(), -MAX_ALPHA, 0.0)
    g_sigma = g_alpha.mul_(neg_alpha)  # [B, P, K]
    G = torch.matmul(mom.t(), g_sigma).transpose(1, 2)  # [B, K, 6] dL/dcoefs of sigma
    g_o = -G[..., 0] / o.clamp_min(1e-30)  # log(o) sits in the constant coefficient
    g_m, g_conic = _coef_backward(m, conic, G)
    g_abs = _abs_mean_grad(mom, m, conic, g_sigma) if absgrad else None
    return g_m, g_conic, g_o, g_f, g_abs


def _coef_backward(m: Tensor, conic: Tensor, G: Tensor) -> tuple[Tensor, Tensor]:
    """Chain dL/dcoefs `[B, K, 6]` of sigma's coefficients (1, x, y, x^2, xy, y^2), i.e. of
    `-log_alpha_coefs` less log(o), back to the means and conics."""
    mx, my = m.unbind(-1)
    a, b, c = conic.unbind(-1)
    g0, gx, gy, gxx, gxy, gyy = G.unbind(-1)
    g_a = 0.5 * mx * mx * g0 - mx * gx + 0.5 * gxx
    g_b = mx * my * g0 - my * gx - mx * gy + gxy
    g_c = 0.5 * my * my * g0 - my * gy + 0.5 * gyy
    g_mx = (a * mx + b * my) * g0 - a * gx - b * gy
    g_my = (c * my + b * mx) * g0 - c * gy - b * gx
    return torch.stack([g_mx, g_my], -1), torch.stack([g_a, g_b, g_c], -1)


def _abs_mean_grad(mom: Tensor, m: Tensor, conic: Tensor, g_sigma: Tensor) -> Tensor:
    """gsplat's absgrad: per-pixel |dL/dmean2d| summed over pixels `[B, K, 2]`."""
    dx = mom[None, :, 1, None] - m[:, None, :, 0]  # [B, P, K] pixel - mean
    dy = mom[None, :, 2, None] - m[:, None, :, 1]
    a, b, c = (t[:, None, :] for t in conic.unbind(-1))
    # dsigma/dmean = -(a dx + b dy, b dx + c dy)
    gx = (g_sigma * (a * dx + b * dy)).abs().sum(1)
    gy = (g_sigma * (b * dx + c * dy)).abs().sum(1)
    return torch.stack([gx, gy], -1)


def composite(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    opacities: Tensor,  # [C, N]
    feats: Tensor,  # [C, N, D]
    tl: TileLists,
    radii: Tensor,  # [C, N, 2]
    height: int,
    width: int,
    absgrad: bool = False,
    block_size: int | None = None,
    max_pairs: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Blend features front to back over the tile lists -> (`[C, H, W, D]` sum of w f, `[C, H, W, 1]` alpha)."""
    block = BLOCK_SIZE if block_size is None else block_size
    if block > tl.tile_size or tl.tile_size % block:
        block = tl.tile_size  # blocks must tile the tiles
    lists, chunks = plan_chunks(tl, means2d, radii, width, height, block, CHUNK_PAIRS if max_pairs is None else max_pairs)
    grid = lists.grid
    backward = torch.is_grad_enabled() and any(t.requires_grad for t in (means2d, conics, opacities, feats))
    keep = KEEP_BLEND_PAIRS if backward and feats.device.type == "cpu" else 0  # GPU: memory bounded by one chunk
    return _Composite.apply(means2d, conics, opacities, feats, grid, chunks, height, width, absgrad, keep)


# --- the backend ---------------------------------------------------------------------------------


def _features(
    means: Tensor, sh_coeffs: Tensor, sh_degree: int, viewmats: Tensor, colors_override: Tensor | None, N: int
) -> Tensor:
    """Per-(camera, Gaussian) colours `[C, N, D]`: SH colour, or the given features broadcast to C."""
    C = viewmats.shape[0]
    if colors_override is None:
        return sh_colors(means, sh_coeffs, sh_degree, viewmats)
    if colors_override.dim() == 2:
        return colors_override[None].expand(C, N, -1)
    if colors_override.shape[:2] != (C, N):
        raise ValueError(f"colors_override must be [N, D] or [C, N, D], got {tuple(colors_override.shape)}")
    return colors_override


def rasterize(
    *,
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4] wxyz, unnormalised
    scales: Tensor,  # [N, 3] activated
    opacities: Tensor,  # [N] activated
    sh_coeffs: Tensor,  # [N, K, 3]
    sh_degree: int,
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    backgrounds: Tensor | None = None,  # [C, D]
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    absgrad: bool = False,
    colors_override: Tensor | None = None,  # [N, D] or [C, N, D]
    tile_size: int = TILE_SIZE,
) -> RenderOutput:
    """Render C views with gsplat 1.5.3's rules (render_mode "RGB+ED", packed=False) in pure PyTorch."""
    C, N = viewmats.shape[0], means.shape[0]
    proj = project_gaussians(means, quats, scales, opacities, viewmats, Ks, width, height, eps2d, near_plane, far_plane)
    colors = _features(means, sh_coeffs, sh_degree, viewmats, colors_override, N)  # [C, N, D]
    feats = torch.cat([colors, proj.depths[..., None]], dim=-1)  # [C, N, D + 1], depth last as gsplat
    means2d = proj.means2d
    if means2d.requires_grad:
        means2d.retain_grad()
    op_cn = opacities[None].expand(C, N)  # [C, N]
    tl = build_tile_lists(proj, width, height, tile_size)
    acc, alpha = composite(means2d, proj.conics, op_cn, feats, tl, proj.radii, height, width, absgrad)
    rgb, depth_acc = acc[..., :-1], acc[..., -1:]
    if backgrounds is not None:
        rgb = rgb + (1.0 - alpha) * backgrounds[:, None, None, :]
    depth = depth_acc / alpha.clamp_min(1e-10)
    info = {
        "batch_ids": None,
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": proj.radii,
        "means2d": means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "opacities": op_cn,
        "tile_width": tl.tiles_x,
        "tile_height": tl.tiles_y,
        "tiles_per_gauss": tl.tiles_per_gauss,
        "isect_offsets": tl.isect_offsets(),
        "flatten_ids": tl.flat_ids.to(torch.int32),
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_batches": 1,
        "n_cameras": C,
        "tile_lists": tl,
    }
    return RenderOutput(rgb=rgb, depth=depth, alpha=alpha, info=info)
