"""Brute-force Fisher diagonal: autograd of every pixel's every channel through `render(backend="torch")`.

One backward pass per (view, pixel, channel): only for tiny scenes (tests). It shares nothing with
`fisher.py` but the renderer, which has its own oracle tests against a dense autograd render.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.eig.fisher import PARAM_GROUPS, check_groups
from faithfusion.gaussians.model import GaussianModel
from faithfusion.render import render


def fisher_oracle(
    model: GaussianModel,
    cameras: Sequence[Camera],
    *,
    groups: Sequence[str] = PARAM_GROUPS,
    pixel_weights: Sequence[Tensor | None] | None = None,  # per camera [H, W]
    backgrounds: Sequence[Tensor | None] | None = None,  # per camera [3] or [H, W, 3]
    sh_degree: int | None = None,
) -> dict[str, Tensor]:
    """sum_views sum_pixels omega_p sum_k (d c_pk / d theta)^2 for every stored parameter of `groups`."""
    groups = check_groups(groups)
    params = [model.params[g] for g in groups]
    H = {g: torch.zeros_like(model.params[g]) for g in groups}
    for ci, cam in enumerate(cameras):
        cam = cam.to(model.device)
        dtype = model.means.dtype
        out = render(model, cam.viewmat[None].to(dtype), cam.K[None].to(dtype), cam.width, cam.height,
                     sh_degree=sh_degree, backend="torch")
        rgb = out.rgb[0]  # [H, W, 3]
        bg = None if backgrounds is None else backgrounds[ci]
        if bg is not None:
            rgb = rgb + (1.0 - out.alpha[0]) * bg.to(rgb)
        omega = None if pixel_weights is None else pixel_weights[ci]
        for y in range(cam.height):
            for x in range(cam.width):
                wp = 1.0 if omega is None else float(omega[y, x])
                if wp == 0.0:
                    continue
                for k in range(3):
                    grads = torch.autograd.grad(rgb[y, x, k], params, retain_graph=True, allow_unused=True)
                    for g, gr in zip(groups, grads):
                        if gr is not None:
                            H[g] += wp * gr.detach() ** 2
    return H
