"""Which (pixel, Gaussian) pairs one camera blends, as chunks of padded `[B, P, K]` tensors.

Starts from the torch backend's tile lists (`build_tile_lists`: 16x16 tiles, front to back, the same
lists gsplat builds). Each tile is cut into `block x block` pixel blocks keeping, in order, the
Gaussians whose screen box (means2d +- radii, grown by 1 px against rounding) reaches the block:
outside that box alpha < 1/255, so no blended pair is lost. Blocks are grouped, longest list first,
into chunks of B blocks x P = block^2 pixels x K list slots with B * P * K <= `max_pairs`, which
bounds the working memory of everything that loops over pairs (Fisher, EIG maps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from faithfusion.render.torch_backend import TileLists


@dataclass
class BlockGrid:
    """The image cut into `size x size` blocks (row-major), padded to whole blocks."""

    size: int
    nx: int
    ny: int
    width: int
    height: int

    @property
    def n_blocks(self) -> int:
        return self.nx * self.ny

    @property
    def n_pixels(self) -> int:  # per block
        return self.size * self.size

    def to_blocks(self, img: Tensor) -> Tensor:
        """Image `[H, W, D]` -> `[n_blocks, P, D]`, zero outside the image."""
        H, W, D = img.shape
        s = self.size
        pad = img.new_zeros(self.ny * s, self.nx * s, D)
        pad[:H, :W] = img
        return pad.view(self.ny, s, self.nx, s, D).permute(0, 2, 1, 3, 4).reshape(self.n_blocks, s * s, D)

    def from_blocks(self, blocks: Tensor) -> Tensor:
        """`[n_blocks, P, D]` -> image `[H, W, D]` (padding cropped)."""
        s, D = self.size, blocks.shape[-1]
        img = blocks.reshape(self.ny, self.nx, s, s, D).permute(0, 2, 1, 3, 4).reshape(self.ny * s, self.nx * s, D)
        return img[: self.height, : self.width].contiguous()

    def pixel_offsets(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """Pixel centres of a block relative to its centre `[P, 2]` (x, y), row-major."""
        r = torch.arange(self.size, device=device, dtype=dtype) + 0.5 - 0.5 * self.size
        py, px = torch.meshgrid(r, r, indexing="ij")
        return torch.stack([px.reshape(-1), py.reshape(-1)], -1)


@dataclass
class Chunk:
    """B blocks with their padded Gaussian lists."""

    blocks: Tensor  # [B] block index
    lists: Tensor  # [B] index of each block's list in the CSR of `BlockLists`
    ids: Tensor  # [B, K] Gaussian ids, front to back, padding repeats a valid id
    valid: Tensor  # [B, K] bool, False on padding
    centres: Tensor  # [B, 2] block centre in pixels (x, y)

    @property
    def n_pairs(self) -> int:
        return self.ids.numel()


@dataclass
class BlockLists:
    """Front-to-back Gaussian ids of every block as CSR (one list per (sub-block, tile), in any order)."""

    grid: BlockGrid
    offsets: Tensor  # [L + 1]
    flat: Tensor  # [n] Gaussian ids
    list_block: Tensor  # [L] block index of each list

    @property
    def counts(self) -> Tensor:  # [L]
        return self.offsets[1:] - self.offsets[:-1]


def cut_to_blocks(tl: TileLists, means2d: Tensor, radii: Tensor, width: int, height: int, block: int) -> BlockLists:
    """Cut each tile's list into its (tile/block)^2 blocks, keeping the Gaussians whose box (+1 px) reaches the block."""
    if tl.n_cameras != 1:
        raise ValueError("cut_to_blocks works on one camera at a time")
    f = tl.tile_size // block
    if f * block != tl.tile_size:
        raise ValueError(f"block size {block} must divide the tile size {tl.tile_size}")
    grid = BlockGrid(block, tl.tiles_x * f, tl.tiles_y * f, width, height)
    device = tl.offsets.device
    n_tiles = tl.n_tiles
    tile_of = torch.repeat_interleave(torch.arange(n_tiles, device=device), tl.counts)  # [I]
    tx, ty = tile_of % tl.tiles_x, tile_of // tl.tiles_x
    gid = tl.flat_ids % tl.n_gaussians  # [I]
    centre = means2d.detach()[gid]  # [I, 2]
    reach_r = radii[gid].to(centre.dtype) + 1.0  # [I, 2]
    tiles = torch.arange(n_tiles, device=device)
    counts, ids, list_block = [], [], []
    for qy in range(f):
        for qx in range(f):
            x0 = ((tx * f + qx) * block).to(centre.dtype)
            y0 = ((ty * f + qy) * block).to(centre.dtype)
            reach = (
                (centre[:, 0] - reach_r[:, 0] <= x0 + block - 0.5)
                & (centre[:, 0] + reach_r[:, 0] >= x0 + 0.5)
                & (centre[:, 1] - reach_r[:, 1] <= y0 + block - 0.5)
                & (centre[:, 1] + reach_r[:, 1] >= y0 + 0.5)
            )
            ids.append(gid[reach])  # grouped by tile, front to back
            counts.append(torch.bincount(tile_of[reach], minlength=n_tiles))
            row = (tiles // tl.tiles_x) * f + qy
            col = (tiles % tl.tiles_x) * f + qx
            list_block.append(row * grid.nx + col)
    count = torch.cat(counts)
    offsets = torch.zeros(count.numel() + 1, dtype=torch.long, device=device)
    offsets[1:] = torch.cumsum(count, 0)
    return BlockLists(grid, offsets, torch.cat(ids), torch.cat(list_block))


def chunk_lists(bl: BlockLists, max_pairs: int, counts: Tensor | None = None, dtype: torch.dtype = torch.float32) -> list[Chunk]:
    """Group the lists, longest first, into chunks of <= `max_pairs` padded pairs; `counts [L]` may shorten
    each list to its first `counts` entries (see `fisher.trim_to_live`)."""
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
        ids = bl.flat[torch.where(valid, start + slot, start)]
        blocks = bl.list_block[lists]
        centres = torch.stack([blocks % grid.nx, blocks // grid.nx], -1).to(dtype) * grid.size + 0.5 * grid.size
        chunks.append(Chunk(blocks, lists, ids, valid, centres))
        i += b
    return chunks


def plan_chunks(
    tl: TileLists, means2d: Tensor, radii: Tensor, width: int, height: int, block: int = 8, max_pairs: int = 1 << 18
) -> tuple[BlockLists, list[Chunk]]:
    """The blended pairs of one camera (`means2d [N, 2]`, `radii [N, 2]`) as chunks of <= `max_pairs` padded pairs."""
    bl = cut_to_blocks(tl, means2d, radii, width, height, block)
    return bl, chunk_lists(bl, max_pairs, dtype=means2d.dtype)
