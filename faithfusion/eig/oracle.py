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


def pixel_variance_oracle(
    model: GaussianModel,
    camera: Camera,
    H_train: dict[str, Tensor],
    precision: dict[str, float],  # Lambda per group of H_train
    noise_var: float,
    empty_var: float,
    *,
    background: Tensor | None = None,  # [3] or [H, W, 3]
    sh_degree: int | None = None,
) -> Tensor:
    """Per pixel `[H, W]`: sum_k sum_theta (d c_pk / d theta)^2 / (H_train / noise_var + Lambda) +
    3 T_final^2 empty_var, with one backward pass per (pixel, channel) through the torch renderer."""
    groups = list(H_train)
    params = [model.params[g] for g in groups]
    cam = camera.to(model.device)
    dtype = model.means.dtype
    out = render(model, cam.viewmat[None].to(dtype), cam.K[None].to(dtype), cam.width, cam.height,
                 sh_degree=sh_degree, backend="torch")
    rgb, alpha = out.rgb[0], out.alpha[0]  # [H, W, 3], [H, W, 1]
    if background is not None:
        rgb = rgb + (1.0 - alpha) * background.to(rgb)
    sigma = [1.0 / (H_train[g].detach() / noise_var + precision[g]) for g in groups]
    var = 3.0 * empty_var * (1.0 - alpha[..., 0].detach()) ** 2
    for y in range(cam.height):
        for x in range(cam.width):
            for k in range(3):
                grads = torch.autograd.grad(rgb[y, x, k], params, retain_graph=True, allow_unused=True)
                for s, gr in zip(sigma, grads):
                    if gr is not None:
                        var[y, x] += (gr.detach() ** 2 * s).sum()
    return var
