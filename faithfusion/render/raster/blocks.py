"""Which (pixel, Gaussian) pairs are blended, as chunks of padded `[B, P, K]` tensors.

Each 16x16 tile's list (`tiles.TileLists`) is cut into its `block x block` pixel blocks keeping, in
order, the Gaussians whose screen box (means2d +- radii, grown by 1 px against rounding) reaches the
block: outside that box alpha < 1/255, so no blended pair is lost, and a third of the pairs go. The
block lists are grouped, longest first, into chunks of B blocks x P = block^2 pixels x K list slots with
B * P * K <= `max_pairs`, which bounds the working memory of everything that loops over pairs
(compositing, Fisher, EIG maps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from faithfusion.render.raster.tiles import TileLists


@dataclass
class BlockGrid:
    """C images cut into `size x size` blocks (row-major per camera), padded to whole blocks."""

    size: int
    nx: int
    ny: int
    width: int
    height: int
    n_cameras: int = 1

    @property
    def n_blocks(self) -> int:
        return self.n_cameras * self.nx * self.ny

    @property
    def n_pixels(self) -> int:  # per block
        return self.size * self.size

    def to_blocks(self, img: Tensor) -> Tensor:
        """Images `[C, H, W, D]` (or one `[H, W, D]`) -> `[n_blocks, P, D]`, zero outside the image."""
        imgs = img[None] if img.dim() == 3 else img
        C, H, W, D = imgs.shape
        s = self.size
        pad = img.new_zeros(C, self.ny * s, self.nx * s, D)
        pad[:, :H, :W] = imgs
        return pad.view(C, self.ny, s, self.nx, s, D).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, D)

    def from_blocks(self, blocks: Tensor) -> Tensor:
        """`[n_blocks, P, D]` -> images `[C, H, W, D]` (padding cropped)."""
        s, D = self.size, blocks.shape[-1]
        img = blocks.reshape(self.n_cameras, self.ny, self.nx, s, s, D).permute(0, 1, 3, 2, 4, 5)
        img = img.reshape(self.n_cameras, self.ny * s, self.nx * s, D)
        return img[:, : self.height, : self.width].contiguous()

    def pixel_offsets(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """Pixel centres of a block relative to its centre `[P, 2]` (x, y), row-major."""
        r = torch.arange(self.size, device=device, dtype=dtype) + 0.5 - 0.5 * self.size
        py, px = torch.meshgrid(r, r, indexing="ij")
        return torch.stack([px.reshape(-1), py.reshape(-1)], -1)

    def block_centres(self, blocks: Tensor, dtype: torch.dtype) -> Tensor:
        """Centre `[B, 2]` (x, y) in pixels of each block index `blocks [B]`."""
        col, row = blocks % self.nx, (blocks // self.nx) % self.ny
        return torch.stack([col, row], -1).to(dtype) * self.size + 0.5 * self.size


@dataclass
class BlockLists:
    """Front-to-back Gaussian lists of every block as CSR (one list per (block, tile), lists in any order)."""

    grid: BlockGrid
    offsets: Tensor  # [L + 1]
    flat_ids: Tensor  # [n] flat (camera, Gaussian) ids into C * N, as `TileLists.flat_ids`
    list_block: Tensor  # [L] block index of each list (camera * ny * nx + row * nx + col)

    @property
    def counts(self) -> Tensor:  # [L]
        return self.offsets[1:] - self.offsets[:-1]


@dataclass
class Chunk:
    """B blocks with their padded Gaussian lists."""

    blocks: Tensor  # [B] block index
    lists: Tensor  # [B] index of each block's list in the CSR of `BlockLists`
    ids: Tensor  # [B, K] flat (camera, Gaussian) ids, front to back, padding repeats a valid id
    valid: Tensor  # [B, K] bool, False on padding
    centres: Tensor  # [B, 2] block centre in pixels (x, y)

    @property
    def n_pairs(self) -> int:
        return self.ids.numel()


def block_lists(tl: TileLists, means2d: Tensor, radii: Tensor, width: int, height: int, block: int) -> BlockLists:
    """Cut each tile's list into its (tile/block)^2 blocks, keeping the Gaussians whose box (+1 px) reaches
    the block; `means2d [C, N, 2]`, `radii [C, N, 2]`."""
    f = tl.tile_size // block
    if f * block != tl.tile_size:
        raise ValueError(f"block size {block} must divide the tile size {tl.tile_size}")
    grid = BlockGrid(block, tl.tiles_x * f, tl.tiles_y * f, width, height, tl.n_cameras)
    device = tl.offsets.device
    n_lists = tl.offsets.numel() - 1
    tile = torch.repeat_interleave(torch.arange(n_lists, device=device), tl.counts)  # [n] list of each entry
    t_in_cam = tile % tl.n_tiles
    tx, ty = t_in_cam % tl.tiles_x, t_in_cam // tl.tiles_x
    box = torch.cat([means2d.detach(), radii.to(means2d.dtype) + 1.0], -1).reshape(-1, 4)[tl.flat_ids]  # [n, 4]
    all_lists = torch.arange(n_lists, device=device)
    lc, lt = all_lists // tl.n_tiles, all_lists % tl.n_tiles
    counts, ids, list_block = [], [], []
    for qy in range(f):
        for qx in range(f):
            x0 = (tx * f + qx) * block  # [n] first pixel column of the block
            y0 = (ty * f + qy) * block
            reach = (
                (box[:, 0] - box[:, 2] <= x0 + block - 0.5)
                & (box[:, 0] + box[:, 2] >= x0 + 0.5)
                & (box[:, 1] - box[:, 3] <= y0 + block - 0.5)
                & (box[:, 1] + box[:, 3] >= y0 + 0.5)
            )
            ids.append(tl.flat_ids[reach])  # still grouped by tile, front to back
            counts.append(torch.bincount(tile[reach], minlength=n_lists))
            row, col = (lt // tl.tiles_x) * f + qy, (lt % tl.tiles_x) * f + qx
            list_block.append(lc * (grid.nx * grid.ny) + row * grid.nx + col)
    count = torch.cat(counts)
    offsets = torch.zeros(count.numel() + 1, dtype=torch.long, device=device)
    offsets[1:] = torch.cumsum(count, 0)
    return BlockLists(grid, offsets, torch.cat(ids), torch.cat(list_block))


def chunk_lists(bl: BlockLists, max_pairs: int, counts: Tensor | None = None, dtype: torch.dtype = torch.float32) -> list[Chunk]:
    """Group the lists, longest first, into chunks of <= `max_pairs` padded pairs; `counts [L]` may shorten
    each list to its first `counts` entries (the Fisher's trimming of never-blended tails)."""
    grid = bl.grid
    counts = bl.counts if counts is None else counts
    order = torch.argsort(counts, descending=True, stable=True)
    sorted_counts = counts[order].tolist()
    n_nonempty = sum(1 for k in sorted_counts if k > 0)
    P = grid.n_pixels
    chunks, i = [], 0
    while i < n_nonempty:
        k = sorted_counts[i]
        b = max(1, min(n_nonempty - i, max_pairs // (P * k)))
        lists = order[i : i + b]
        slot = torch.arange(k, device=lists.device)  # [K]
        start = bl.offsets[lists][:, None]  # [B, 1]
        valid = slot[None, :] < counts[lists][:, None]  # [B, K]
        ids = bl.flat_ids[torch.where(valid, start + slot, start)]
        blocks = bl.list_block[lists]
        chunks.append(Chunk(blocks, lists, ids, valid, grid.block_centres(blocks, dtype)))
        i += b
    return chunks


def plan_chunks(
    tl: TileLists, means2d: Tensor, radii: Tensor, width: int, height: int, block: int, max_pairs: int
) -> tuple[BlockLists, list[Chunk]]:
    """The blended pairs of C cameras (`means2d [C, N, 2]`, `radii [C, N, 2]`) as chunks of <= `max_pairs` padded pairs."""
    bl = block_lists(tl, means2d, radii, width, height, block)
    return bl, chunk_lists(bl, max_pairs, dtype=means2d.dtype)
