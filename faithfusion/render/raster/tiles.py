"""Which Gaussians touch which 16x16 tile, front to back: gsplat's `isect_offsets` / `flatten_ids` as CSR.

`build_tile_lists` is the pure-PyTorch intersection; `isect_tile_lists` is gsplat's CUDA one for a
projection of ours; `tile_lists` picks gsplat where it can run (CUDA, float32, installed), else torch.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from faithfusion.render.raster.projection import Projection
from faithfusion.render.raster.rules import TILE_SIZE


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
        offsets = torch.cat([starts, starts.new_full((1,), flat.numel())])  # a fill, not a host-to-device copy
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


def isect_tile_lists(proj: Projection, width: int, height: int, tile_size: int = TILE_SIZE) -> TileLists:
    """`build_tile_lists` by gsplat's CUDA intersection and radix sort, for a projection of ours (float32
    on CUDA): the same tiles per Gaussian, each tile sorted front to back."""
    from gsplat.cuda._wrapper import isect_offset_encode, isect_tiles  # lazy: CUDA only

    C, N = proj.visible.shape
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    tiles_per_gauss, isect_ids, flatten_ids = isect_tiles(
        proj.means2d.contiguous(), proj.radii.contiguous(), proj.depths.contiguous(), tile_size, tiles_x, tiles_y)
    starts = isect_offset_encode(isect_ids, C, tiles_x, tiles_y).reshape(-1).long()
    flat = flatten_ids.long()
    return TileLists(tile_size=tile_size, tiles_x=tiles_x, tiles_y=tiles_y, n_cameras=C, n_gaussians=N,
                     offsets=torch.cat([starts, starts.new_tensor([flat.numel()])]), flat_ids=flat,
                     tiles_per_gauss=tiles_per_gauss)


def tile_lists(proj: Projection, width: int, height: int, tile_size: int = TILE_SIZE) -> TileLists:
    """Tile lists of a projection: gsplat's intersection on CUDA in float32 where gsplat is installed,
    else `build_tile_lists`."""
    if proj.means2d.is_cuda and proj.means2d.dtype == torch.float32 and importlib.util.find_spec("gsplat") is not None:
        return isect_tile_lists(proj, width, height, tile_size)
    return build_tile_lists(proj, width, height, tile_size)
