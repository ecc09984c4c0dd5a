"""The pure-PyTorch rasterizer: gsplat 1.5.3's 3DGS pipeline, written over tiles of 16x16 pixels.

Three stages, each a function of its own:

1. `project_gaussians`: EWA projection as gsplat's `fully_fused_projection` (packed=False) does it:
   world -> camera, covariance R S S^T R^T, perspective Jacobian with the tangent clamped at 1.3x the
   image's half-extent, `cov2d + eps2d * I`, conic = inverse, opacity-aware radius
   `ceil(min(3.33, sqrt(2 ln(255 o))) * sqrt(cov2d_ii))`, culling by the near/far planes, by
   `o < 1/255` and by the image bounds (radii [C,N,2] int32, 0 where culled).
2. `build_tile_lists`: for every 16x16 tile the Gaussians whose screen box touches it, front to back
   (sorted by camera depth, ties by index), stored as CSR (`offsets`, `flat_ids` into C*N) exactly
   like gsplat's `isect_offsets` / `flatten_ids` (`info["tile_lists"]`, for the Fisher/EIG code).
3. `composite`: alpha blending, chunk by chunk over padded `[blocks, pixels, K]` tensors. Each tile's
   list is first cut to its four 8x8 blocks (a Gaussian stays in a block only if its screen box, +1
   px, reaches it: outside the box its alpha is < 1/255 anyway), which removes a third of the work.
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

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from faithfusion.render.api import RenderOutput
from faithfusion.render.sh import sh_colors

TILE_SIZE = 16
ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
T_STOP = 1e-4  # a pixel stops before the Gaussian whose next transmittance would be <= this
EXTEND_MAX = 3.33  # radius in standard deviations, before the opacity-aware bound
FOV_MARGIN = 0.3  # the Jacobian's tangent is clamped at (1 + 0.3) x the image half-extent
CHUNK_PAIRS = 1 << 18  # pixel x Gaussian pairs per compositing chunk (bounds the working memory)
BLOCK_SIZE = 8  # compositing block: each 16x16 tile's list is cut to its 8x8 quarters


# --- 1. projection -----------------------------------------------------------------------------


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


def _clamped_tangent(x: Tensor, rz: Tensor, f: Tensor, c: Tensor, size: int) -> Tensor:
    """x/z clamped to the widened field of view, as in gsplat's perspective Jacobian `[C, N]`."""
    tan_fov = 0.5 * size / f  # [C, 1]
    lim_pos = (size - c) / f + FOV_MARGIN * tan_fov
    lim_neg = c / f + FOV_MARGIN * tan_fov
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


# --- 2. tile lists -----------------------------------------------------------------------------


@dataclass
class TileLists:
    """Which Gaussians touch which tile, front to back: gsplat's `isect_offsets`/`flatten_ids` as CSR.

    Tile `t` of camera `c` (row-major, `t = ty * tiles_x + tx`) has list index `c * n_tiles + t`; its
    Gaussians are `flat_ids[offsets[i]:offsets[i+1]]`, entries of the flattened `[C * N]` (camera,
    Gaussian) grid (`gaussian = flat_id % N`), nearest first.
    """

    tile_size: int
    tiles_x: int
    tiles_y: int
    n_cameras: int
    n_gaussians: int
    offsets: Tensor  # [C * tiles_y * tiles_x + 1] int64
    flat_ids: Tensor  # [n_isects] int64
    tiles_per_gauss: Tensor  # [C, N] int32

    @property
    def n_tiles(self) -> int:
        return self.tiles_x * self.tiles_y

    @property
    def counts(self) -> Tensor:  # [C * n_tiles]
        return self.offsets[1:] - self.offsets[:-1]

    def isect_offsets(self) -> Tensor:
        """gsplat's layout: `[C, tiles_y, tiles_x]` int32 start of each tile's range."""
        return self.offsets[:-1].to(torch.int32).reshape(self.n_cameras, self.tiles_y, self.tiles_x)

    @classmethod
    def from_gsplat(cls, meta: dict, n_gaussians: int) -> "TileLists":
        """The same structure from the `meta` that `gsplat.rasterization(packed=False)` returns."""
        flat = meta["flatten_ids"].long()
        starts = meta["isect_offsets"].reshape(-1).long()
        offsets = torch.cat([starts, starts.new_tensor([flat.numel()])])
        return cls(
            tile_size=int(meta["tile_size"]),
            tiles_x=int(meta["tile_width"]),
            tiles_y=int(meta["tile_height"]),
            n_cameras=int(meta["n_cameras"]),
            n_gaussians=n_gaussians,
            offsets=offsets,
            flat_ids=flat,
            tiles_per_gauss=meta["tiles_per_gauss"],
        )


@torch.no_grad()
def build_tile_lists(proj: Projection, width: int, height: int, tile_size: int = TILE_SIZE) -> TileLists:
    """Intersect every visible Gaussian's screen box with the tile grid and sort each tile by depth."""
    C, N = proj.visible.shape
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    device = proj.means2d.device
    flat_vis = proj.visible.reshape(-1).nonzero().squeeze(-1)  # [V] into C*N
    # tile box [min, max) per visible Gaussian, as gsplat's isect_tiles computes it
    m = proj.means2d.reshape(-1, 2)[flat_vis] / tile_size  # [V, 2]
    r = proj.radii.reshape(-1, 2)[flat_vis].to(m.dtype) / tile_size
    hi = torch.tensor([tiles_x, tiles_y], device=device)
    lo_t = torch.minimum(torch.floor(m - r).clamp_min(0).long(), hi)  # [V, 2]
    hi_t = torch.minimum(torch.ceil(m + r).clamp_min(0).long(), hi)
    span = hi_t - lo_t  # [V, 2]
    count = span[:, 0] * span[:, 1]  # [V]
    tiles_per_gauss = torch.zeros(C * N, dtype=torch.int32, device=device)
    tiles_per_gauss[flat_vis] = count.to(torch.int32)
    # front-to-back order of the visible Gaussians (stable: ties keep index order, like gsplat's sort)
    depth = proj.depths.reshape(-1)[flat_vis]
    rank = torch.empty_like(flat_vis)
    rank[torch.sort(depth, stable=True).indices] = torch.arange(flat_vis.numel(), device=device)
    # expand each Gaussian into its tiles
    rep = torch.repeat_interleave(torch.arange(flat_vis.numel(), device=device), count)  # [I]
    first = torch.cumsum(count, 0) - count  # [V]
    local = torch.arange(rep.numel(), device=device) - first[rep]  # [I]
    w = span[rep, 0]
    tx = lo_t[rep, 0] + local % w
    ty = lo_t[rep, 1] + local // w
    cam = flat_vis[rep] // N
    tile_key = cam * (tiles_x * tiles_y) + ty * tiles_x + tx  # [I]
    order = torch.argsort(tile_key * max(flat_vis.numel(), 1) + rank[rep])
    n_lists = C * tiles_x * tiles_y
    counts = torch.bincount(tile_key, minlength=n_lists)
    offsets = torch.zeros(n_lists + 1, dtype=torch.long, device=device)
    offsets[1:] = torch.cumsum(counts, 0)
    return TileLists(
        tile_size=tile_size,
        tiles_x=tiles_x,
        tiles_y=tiles_y,
        n_cameras=C,
        n_gaussians=N,
        offsets=offsets,
        flat_ids=flat_vis[rep][order],
        tiles_per_gauss=tiles_per_gauss.reshape(C, N),
    )


# --- 3. compositing ----------------------------------------------------------------------------


@dataclass
class _Grid:
    """The grid of pixel blocks that compositing works on (the tiles, or each tile cut into sub-blocks)."""

    size: int  # block side in pixels
    nx: int
    ny: int
    n_cameras: int

    @property
    def n_blocks(self) -> int:
        return self.n_cameras * self.nx * self.ny


@dataclass
class _Chunk:
    blocks: Tensor  # [B] block index (camera * ny * nx + row * nx + col)
    ids: Tensor  # [B, K] flat (camera, Gaussian) ids, front to back, padded with a valid id
    valid: Tensor  # [B, K] bool, False on padding
    centres: Tensor  # [B, 2] block centre in pixels


@dataclass
class _BlockLists:
    """Front-to-back Gaussian lists of the blocks of a `_Grid` (CSR; lists in any order)."""

    offsets: Tensor  # [L + 1]
    flat_ids: Tensor  # [n]
    blocks: Tensor  # [L] block index of each list
    corners: Tensor  # [L, 2] top-left pixel of each list's block

    @property
    def counts(self) -> Tensor:
        return self.offsets[1:] - self.offsets[:-1]


def block_lists(tl: TileLists, means2d: Tensor, radii: Tensor, block_size: int) -> tuple[_Grid, _BlockLists]:
    """The tile lists, each cut into its (tile/block)^2 blocks keeping (in order) the Gaussians whose box reaches them.

    A pixel outside a Gaussian's screen box (means2d +- radii) has alpha < 1/255 there, so blending a
    block over this shorter list gives the same image as over the whole tile's list; the box is grown
    by 1 pixel against rounding.
    """
    f = tl.tile_size // block_size
    if f * block_size != tl.tile_size:
        raise ValueError(f"block size {block_size} must divide the tile size {tl.tile_size}")
    grid = _Grid(block_size, tl.tiles_x * f, tl.tiles_y * f, tl.n_cameras)
    device = tl.offsets.device
    n_lists = tl.offsets.numel() - 1
    tile = torch.repeat_interleave(torch.arange(n_lists, device=device), tl.counts)  # [n] list of each entry
    cam, t_in_cam = tile // tl.n_tiles, tile % tl.n_tiles
    tx, ty = t_in_cam % tl.tiles_x, t_in_cam // tl.tiles_x
    box = torch.cat([means2d.detach(), radii.to(means2d.dtype) + 1.0], -1).reshape(-1, 4)[tl.flat_ids]  # [n, 4]
    all_lists = torch.arange(n_lists, device=device)
    offsets, ids, blocks, corners = [], [], [], []
    for qy in range(f):
        for qx in range(f):
            x0 = (tx * f + qx) * block_size  # [n] first pixel column of the block
            y0 = (ty * f + qy) * block_size
            reach = (
                (box[:, 0] - box[:, 2] <= x0 + block_size - 0.5)
                & (box[:, 0] + box[:, 2] >= x0 + 0.5)
                & (box[:, 1] - box[:, 3] <= y0 + block_size - 0.5)
                & (box[:, 1] + box[:, 3] >= y0 + 0.5)
            )
            ids.append(tl.flat_ids[reach])  # still grouped by tile, front to back
            offsets.append(torch.bincount(tile[reach], minlength=n_lists))
            lc, lt = all_lists // tl.n_tiles, all_lists % tl.n_tiles
            row, col = (lt // tl.tiles_x) * f + qy, (lt % tl.tiles_x) * f + qx
            blocks.append(lc * (grid.nx * grid.ny) + row * grid.nx + col)
            corners.append(torch.stack([col, row], -1) * block_size)
    counts = torch.cat(offsets)
    off = torch.zeros(counts.numel() + 1, dtype=torch.long, device=device)
    off[1:] = torch.cumsum(counts, 0)
    return grid, _BlockLists(off, torch.cat(ids), torch.cat(blocks), torch.cat(corners))


def plan_chunks(
    tl: TileLists, means2d: Tensor, radii: Tensor, block_size: int, max_pairs: int
) -> tuple[_Grid, list[_Chunk]]:
    """Cut the block lists into chunks of blocks with a padded list length K, each <= `max_pairs` pixel-Gaussian pairs.

    Lists are taken longest first, so that a chunk pads little.
    """
    grid, bl = block_lists(tl, means2d, radii, block_size)
    counts = bl.counts
    order = torch.argsort(counts, descending=True, stable=True)
    sorted_counts = counts[order].tolist()
    n_nonempty = sum(1 for k in sorted_counts if k > 0)
    chunks, i = [], 0
    while i < n_nonempty:
        k = sorted_counts[i]
        b = max(1, min(n_nonempty - i, max_pairs // (block_size**2 * k)))
        lists = order[i : i + b]
        slot = torch.arange(k, device=lists.device)  # [K]
        start = bl.offsets[lists][:, None]  # [B, 1]
        valid = slot[None, :] < counts[lists][:, None]
        ids = bl.flat_ids[torch.where(valid, start + slot, start)]
        chunks.append(_Chunk(bl.blocks[lists], ids, valid, bl.corners[lists] + 0.5 * block_size))
        i += b
    return grid, chunks


def _pixel_moments(tile_size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Monomials (1, x, y, x^2, xy, y^2) of the pixel centres of a tile, relative to its centre `[P, 6]`."""
    r = torch.arange(tile_size, device=device, dtype=dtype) + 0.5 - 0.5 * tile_size
    py, px = torch.meshgrid(r, r, indexing="ij")
    px, py = px.reshape(-1), py.reshape(-1)
    return torch.stack([torch.ones_like(px), px, py, px * px, px * py, py * py], -1)


def _quadratic_coefs(m: Tensor, conic: Tensor) -> Tensor:
    """sigma(p) = coefs . (1, x, y, x^2, xy, y^2) for Gaussians at `m [B, K, 2]` with `conic [B, K, 3]` -> `[B, K, 6]`."""
    mx, my = m.unbind(-1)
    a, b, c = conic.unbind(-1)
    return torch.stack(
        [
            0.5 * a * mx * mx + 0.5 * c * my * my + b * mx * my,
            -(a * mx + b * my),
            -(c * my + b * mx),
            0.5 * a,
            b,
            0.5 * c,
        ],
        dim=-1,
    )


def _log_alpha_coefs(m: Tensor, conic: Tensor, o: Tensor) -> Tensor:
    """log(o exp(-sigma)) = coefs . monomials `[B, K, 6]`; padding (o = 0) gets a vanishing alpha."""
    coefs = -_quadratic_coefs(m, conic)
    coefs[..., 0] += torch.log(o.clamp_min(1e-30))
    return coefs


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
    coefs = _log_alpha_coefs(m, conic, opac)  # [B, K, 6]
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


def _gather(chunk: _Chunk, packed: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Chunk-local Gaussian data: block-centred means, conics, opacities (0 on padding), features."""
    g = packed.index_select(0, chunk.ids.reshape(-1)).view(*chunk.ids.shape, -1)  # [B, K, 6 + D]
    m = g[..., :2] - chunk.centres[:, None, :]  # [B, K, 2]
    o = g[..., 5] * chunk.valid  # [B, K]
    return m, g[..., 2:5], o, g[..., 6:]


def _to_blocks(img: Tensor, g: _Grid) -> Tensor:
    """Image `[C, H, W, D]` -> block layout `[C * ny * nx, P, D]` (zero padded)."""
    C, H, W, D = img.shape
    s = g.size
    pad = img.new_zeros(C, g.ny * s, g.nx * s, D)
    pad[:, :H, :W] = img
    return pad.view(C, g.ny, s, g.nx, s, D).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, D)


def _from_blocks(blocks: Tensor, g: _Grid, height: int, width: int) -> Tensor:
    """Block layout `[C * ny * nx, P, D]` -> image `[C, H, W, D]`."""
    s, D = g.size, blocks.shape[-1]
    img = blocks.view(g.n_cameras, g.ny, g.nx, s, s, D).permute(0, 1, 3, 2, 4, 5)
    return img.reshape(g.n_cameras, g.ny * s, g.nx * s, D)[:, :height, :width].contiguous()


class _Composite(torch.autograd.Function):
    """Alpha blending of projected Gaussians over tile lists; hand-written, chunk-recomputing backward."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, feats, grid, chunks, height, width, absgrad):
        C, N, D = feats.shape
        packed = _pack(means2d, conics, opacities, feats)
        mom = _pixel_moments(grid.size, feats.dtype, feats.device)
        out = feats.new_zeros(grid.n_blocks, mom.shape[0], D)
        T_out = feats.new_ones(grid.n_blocks, mom.shape[0])
        for ch in chunks:
            m, conic, o, f = _gather(ch, packed)
            bl = _blend(mom, m, conic, o)
            out[ch.blocks] = torch.matmul(bl.weight, f)  # [B, P, D]
            T_out[ch.blocks] = bl.T_final
        ctx.save_for_backward(means2d, conics, opacities, feats)
        ctx.grid, ctx.chunks, ctx.absgrad = grid, chunks, absgrad
        ctx.means2d_obj = means2d if absgrad else None  # gsplat stores `.absgrad` on this tensor
        image = _from_blocks(out, grid, height, width)
        alpha = 1.0 - _from_blocks(T_out[..., None], grid, height, width)
        return image, alpha

    @staticmethod
    def backward(ctx, g_image, g_alpha):
        means2d, conics, opacities, feats = ctx.saved_tensors
        grid, chunks = ctx.grid, ctx.chunks
        C, N, D = feats.shape
        packed = _pack(means2d, conics, opacities, feats)
        grads = torch.zeros_like(packed)  # [C * N, 6 + D] same layout
        gC_blocks = _to_blocks(g_image, grid)  # [n_blocks, P, D]
        gA_blocks = _to_blocks(g_alpha, grid)[..., 0]  # [n_blocks, P]
        mom = _pixel_moments(grid.size, feats.dtype, feats.device)
        g_abs = means2d.new_zeros(C * N, 2) if ctx.absgrad else None
        for ch in chunks:
            m, conic, o, f = _gather(ch, packed)
            gm, gc, go, gf, gabs = _blend_backward(mom, m, conic, o, f, gC_blocks[ch.blocks], gA_blocks[ch.blocks], ctx.absgrad)
            go = go * ch.valid  # padding slots carry real ids but must add nothing
            g = torch.cat([gm, gc, go[..., None], gf], -1)  # [B, K, 6 + D]
            ids = ch.ids.reshape(-1)
            grads.index_add_(0, ids, g.reshape(-1, g.shape[-1]))
            if gabs is not None:
                g_abs.index_add_(0, ids, gabs.reshape(-1, 2))
        if ctx.absgrad:
            ctx.means2d_obj.absgrad = g_abs.reshape(C, N, 2)
        grads = grads.reshape(C, N, 6 + D)
        return grads[..., :2], grads[..., 2:5], grads[..., 5], grads[..., 6:], None, None, None, None, None


def _blend_backward(mom, m, conic, o, f, gC, gA, absgrad: bool):
    """Vector-Jacobian product of one chunk -> grads of (m [B,K,2], conic [B,K,3], o [B,K], f [B,K,D], |dm|)."""
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
    neg_alpha = torch.nn.functional.threshold_(bl.alpha.neg_(), -MAX_ALPHA, 0.0)
    g_sigma = g_alpha.mul_(neg_alpha)  # [B, P, K]
    G = torch.matmul(mom.t(), g_sigma).transpose(1, 2)  # [B, K, 6] dL/dcoefs of sigma
    g_o = -G[..., 0] / o.clamp_min(1e-30)  # log(o) sits in the constant coefficient
    g_m, g_conic = _coef_backward(m, conic, G)
    g_abs = _abs_mean_grad(mom, m, conic, g_sigma) if absgrad else None
    return g_m, g_conic, g_o, g_f, g_abs


def _coef_backward(m: Tensor, conic: Tensor, G: Tensor) -> tuple[Tensor, Tensor]:
    """Chain dL/dcoefs `[B, K, 6]` of `_quadratic_coefs` back to the means and conics."""
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
    grid, chunks = plan_chunks(tl, means2d, radii, block, CHUNK_PAIRS if max_pairs is None else max_pairs)
    return _Composite.apply(means2d, conics, opacities, feats, grid, chunks, height, width, absgrad)


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
