"""The render front: one call, two backends, one output type.

`render()` takes gsplat-style batched cameras and returns RGB, expected depth, alpha and the
per-Gaussian `info` dict that gsplat's densification strategies and the Fisher computation read
(`means2d` with its gradient, `radii`, `width`, `height`, `n_cameras`, ...). Both backends follow
gsplat's conventions (EWA projection with eps2d blur, alpha = min(0.999, o * exp(-sigma)),
alpha < 1/255 skipped, transmittance stop at 1e-4, SH colour + 0.5 clamped at 0), so they agree.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from faithfusion.gaussians.model import GaussianModel
from faithfusion.render.output import RenderOutput

Backend = Literal["auto", "torch", "gsplat"]


def pick_backend(backend: Backend, device: torch.device) -> str:
    if backend != "auto":
        return backend
    return "gsplat" if device.type == "cuda" else "torch"


def render(
    model: GaussianModel,
    viewmats: Tensor,  # [C, 4, 4] world-to-camera
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,  # [C, 3]
    backend: Backend = "auto",
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    absgrad: bool = False,
    colors_override: Tensor | None = None,  # [N, D] or [C, N, D] per-Gaussian features instead of SH colour
) -> RenderOutput:
    """Rasterize `model` from C cameras. Differentiable w.r.t. every parameter on both backends."""
    which = pick_backend(backend, model.device)
    degree = model.sh_degree if sh_degree is None else min(sh_degree, model.sh_degree)
    kwargs = dict(
        means=model.means,
        quats=model.params["quats"],
        scales=model.scales,
        opacities=model.opacities,
        sh_coeffs=model.sh_coeffs,
        sh_degree=degree,
        viewmats=viewmats,
        Ks=Ks,
        width=width,
        height=height,
        backgrounds=backgrounds,
        near_plane=near_plane,
        far_plane=far_plane,
        eps2d=eps2d,
        absgrad=absgrad,
        colors_override=colors_override,
    )
    if which == "gsplat":
        from faithfusion.render.gsplat_backend import rasterize
    elif which == "torch":
        from faithfusion.render.torch_backend import rasterize
    else:
        raise ValueError(f"unknown render backend {backend!r}: choose auto, torch or gsplat")
    return rasterize(**kwargs)
