"""A tiny scene that exercises every rasterizer rule, for the oracle test and the CPU-vs-GPU check.

30 Gaussians seen by 2 cameras of 12x10 pixels: one behind the camera, one off-screen, an opaque stack
that drives the transmittance below 1e-4, one outside the widened field of view (clamped tangent in the
projection Jacobian) that still reaches the image, one with alpha clamped at 0.999 on a pixel centre,
one whose SH colour is clamped at 0; SH degree 3 so that colours depend on the view direction.
"""

from __future__ import annotations

import math

import torch

from faithfusion.cameras import Camera
from faithfusion.gaussians.model import GaussianModel


def toy_scene(
    n: int = 30, width: int = 12, height: int = 10, n_cameras: int = 2, sh_degree: int = 3,
    dtype: torch.dtype = torch.float64, seed: int = 0,
) -> tuple[GaussianModel, list[Camera]]:
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) * 2 - 1) * torch.tensor([1.0, 0.8, 0.8])
    means[:, 2] += 3.0
    means[0, 2] = -1.0  # behind the camera
    means[1, 0] = 20.0  # off-screen
    means[2:8] = torch.tensor([0.0, 0.0, 2.0]) + 0.05 * torch.randn(6, 3, generator=g)  # opaque stack
    means[8] = torch.tensor([2.6, 0.2, 2.0])  # x/z = 1.3 > 1.3 x half fov: clamped tangent, still on screen
    means[9] = torch.tensor([0.06, 0.06, 1.2])  # on pixel centre (6.5, 5.5) of camera 0, in front
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.3 + 0.05
    scales[2:8] = 0.4
    scales[8] = 0.9
    opac = torch.rand(n, generator=g) * 0.8 + 0.1
    opac[2:8] = 0.97
    opac[9] = 0.9995  # alpha clamped at 0.999 near its centre
    sh = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.5
    sh[10, 0] = -3.0  # colour clamped at 0
    params = {
        "means": means, "scales": scales.log(), "quats": quats, "opacities": torch.logit(opac),
        "sh0": sh[:, :1].clone(), "shN": sh[:, 1:].clone(),
    }
    model = GaussianModel({k: v.to(dtype) for k, v in params.items()}, sh_degree)
    K = torch.tensor([[10.0, 0, width / 2], [0, 10.0, height / 2], [0, 0, 1]], dtype=dtype)
    cams = []
    for c in range(n_cameras):
        a = 0.2 * c
        vm = torch.eye(4, dtype=dtype)
        vm[:3, :3] = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], dtype=dtype)
        vm[:3, 3] = torch.tensor([0.3 * c, -0.1 * c, 0.2 * c], dtype=dtype)
        cams.append(Camera(K=K.clone(), viewmat=vm, width=width, height=height, name=f"toy{c}"))
    return model, cams
