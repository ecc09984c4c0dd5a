"""The CUDA backend: `gsplat.rasterization` (packed=False, render_mode "RGB+ED") behind our interface.

gsplat is imported inside `rasterize` so that importing FaithFusion never needs CUDA. The returned
`info` is gsplat's own meta dict (means2d, radii, depths, conics, opacities, tile_width/height,
isect_offsets, flatten_ids, width, height, n_cameras, ...) plus `tile_lists`, the same CSR view of
its tile intersections that the torch backend returns, so later stages read one structure.
"""

from __future__ import annotations

from torch import Tensor

from faithfusion.render.output import RenderOutput
from faithfusion.render.raster.tiles import TileLists


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
) -> RenderOutput:
    """Render C views with gsplat's CUDA kernels; `info["means2d"].grad` (and `.absgrad`) fill on backward."""
    import gsplat  # lazy: CUDA only

    if colors_override is None:
        colors, degree = sh_coeffs, sh_degree
    else:
        colors, degree = colors_override, None
    render, alpha, info = gsplat.rasterization(
        means=means,
        quats=quats,
        scales=scales,
        opacities=opacities,
        colors=colors,
        viewmats=viewmats,
        Ks=Ks,
        width=width,
        height=height,
        near_plane=near_plane,
        far_plane=far_plane,
        eps2d=eps2d,
        sh_degree=degree,
        packed=False,
        backgrounds=backgrounds,
        render_mode="RGB+ED",
        absgrad=absgrad,
    )
    if info["means2d"].requires_grad:
        info["means2d"].retain_grad()
    info["tile_lists"] = TileLists.from_gsplat(info, n_gaussians=means.shape[0])
    return RenderOutput(rgb=render[..., :-1], depth=render[..., -1:], alpha=alpha, info=info)

