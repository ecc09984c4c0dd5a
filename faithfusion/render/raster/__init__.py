"""The rasterizer's primitives, in the order a render chains them (as gsplat's are):

    project_gaussians -> tile_lists / build_tile_lists -> plan_chunks (block_lists, chunk_lists)
    -> per chunk: pixel_quadratics @ log_alpha_coefs -> alpha, then front-to-back blending

`render/torch_backend.py` chains them into `rasterize`; the Fisher/EIG code (`faithfusion.eig`) walks
the same projection, lists and chunks with its own per-pair algebra.
"""

from faithfusion.render.raster.alpha import log_alpha_coefs, pixel_quadratics
from faithfusion.render.raster.blocks import BlockGrid, BlockLists, Chunk, block_lists, chunk_lists, plan_chunks
from faithfusion.render.raster.projection import Projection, project_gaussians, quat_scale_factor, tangent_limits
from faithfusion.render.raster.rules import (
    ALPHA_THRESHOLD,
    BLOCK_SIZE,
    CHUNK_PAIRS,
    EXTEND_MAX,
    FOV_MARGIN,
    MAX_ALPHA,
    T_STOP,
    TILE_SIZE,
)
from faithfusion.render.raster.tiles import TileLists, build_tile_lists, isect_tile_lists, tile_lists

__all__ = [
    "ALPHA_THRESHOLD", "BLOCK_SIZE", "CHUNK_PAIRS", "EXTEND_MAX", "FOV_MARGIN", "MAX_ALPHA", "T_STOP", "TILE_SIZE",
    "BlockGrid", "BlockLists", "Chunk", "Projection", "TileLists",
    "block_lists", "build_tile_lists", "chunk_lists", "isect_tile_lists", "log_alpha_coefs", "pixel_quadratics",
    "plan_chunks", "project_gaussians", "quat_scale_factor", "tangent_limits", "tile_lists",
]
