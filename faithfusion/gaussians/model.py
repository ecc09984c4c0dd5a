"""GaussianModel: the parameters of a 3DGS scene in gsplat's naming and storage.

means [N,3]; scales [N,3] stored as log; quats [N,4] wxyz (unnormalised); opacities [N] stored
as logit; sh0 [N,1,3] (DC) and shN [N,K-1,3] with K = (degree+1)^2. The parameter names are the
ones gsplat's strategies expect, so `model.params` can be handed to them directly.
"""

from __future__ import annotations


import numpy as np
import torch
from torch import Tensor, nn

SH_C0 = 0.28209479177387814


def rgb_to_sh(rgb: Tensor) -> Tensor:
    return (rgb - 0.5) / SH_C0


def num_sh_bases(degree: int) -> int:
    return (degree + 1) ** 2


class GaussianModel(nn.Module):
    """A set of 3D Gaussians with spherical-harmonic colour."""

    def __init__(self, params: dict[str, Tensor], sh_degree: int = 3) -> None:
        super().__init__()
        self.sh_degree = sh_degree
        self.params = nn.ParameterDict({k: nn.Parameter(v) for k, v in params.items()})
        n = self.params["means"].shape[0]
        expected = {"means": (n, 3), "scales": (n, 3), "quats": (n, 4), "opacities": (n,), "sh0": (n, 1, 3)}
        for key, shape in expected.items():
            if tuple(self.params[key].shape) != shape:
                raise ValueError(f"GaussianModel: {key} has shape {tuple(self.params[key].shape)}, expected {shape}")
        if tuple(self.params["shN"].shape) != (n, num_sh_bases(sh_degree) - 1, 3):
            raise ValueError(f"GaussianModel: shN has shape {tuple(self.params['shN'].shape)} for degree {sh_degree}")

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def from_points(
        cls,
        points: Tensor,  # [N, 3]
        colors: Tensor | None = None,  # [N, 3] in [0, 1]
        sh_degree: int = 3,
        init_opacity: float = 0.1,
        init_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> "GaussianModel":
        """Isotropic Gaussians on the points, sized by the mean distance to their 3 nearest neighbours."""
        if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] == 0:
            raise ValueError(f"GaussianModel.from_points: need a non-empty [N,3] point set, got {tuple(points.shape)}")
        if not torch.isfinite(points).all():
            raise ValueError("GaussianModel.from_points: points contain NaN or infinite values")
        n = points.shape[0]
        if colors is None:
            colors = torch.rand(n, 3, generator=generator)
        dist = knn_mean_distance(points.float(), k=3).clamp_min(1e-7)
        params = {
            "means": points.float().clone(),
            "scales": torch.log(dist * init_scale)[:, None].repeat(1, 3),
            "quats": torch.nn.functional.normalize(torch.randn(n, 4, generator=generator), dim=-1),
            "opacities": torch.logit(torch.full((n,), init_opacity)),
            "sh0": rgb_to_sh(colors.float().clamp(0, 1))[:, None, :],
            "shN": torch.zeros(n, num_sh_bases(sh_degree) - 1, 3),
        }
        return cls(params, sh_degree)

    @classmethod
    def random(cls, n: int, extent: float = 1.0, sh_degree: int = 3, seed: int = 0) -> "GaussianModel":
        """Random Gaussians in a cube of half-size `extent` (tests and benchmarks)."""
        g = torch.Generator().manual_seed(seed)
        points = (torch.rand(n, 3, generator=g) * 2 - 1) * extent
        return cls.from_points(points, torch.rand(n, 3, generator=g), sh_degree, generator=g)

    # --- views ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.params["means"].shape[0]

    @property
    def means(self) -> Tensor:  # [N, 3]
        return self.params["means"]

    @property
    def scales(self) -> Tensor:  # [N, 3] activated
        return torch.exp(self.params["scales"])

    @property
    def quats(self) -> Tensor:  # [N, 4] unit wxyz
        return torch.nn.functional.normalize(self.params["quats"], dim=-1)

    @property
    def opacities(self) -> Tensor:  # [N] activated
        return torch.sigmoid(self.params["opacities"])

    @property
    def sh_coeffs(self) -> Tensor:  # [N, K, 3]
        return torch.cat([self.params["sh0"], self.params["shN"]], dim=1)

    @property
    def device(self) -> torch.device:
        return self.params["means"].device

    def state_for_save(self) -> dict[str, Tensor]:
        return {k: v.detach().cpu() for k, v in self.params.items()}


def knn_mean_distance(points: Tensor, k: int = 3) -> Tensor:
    """Mean distance of each point to its k nearest neighbours `[N]` (scipy KD-tree; fast for 1e6 points)."""
    from scipy.spatial import cKDTree

    x = points.detach().cpu().numpy().astype(np.float64)
    if x.shape[0] <= 1:
        return torch.full((x.shape[0],), 0.01)
    kk = min(k + 1, x.shape[0])
    dist, _ = cKDTree(x).query(x, k=kk)
    d = dist[:, 1:].mean(axis=1)
    d[~np.isfinite(d)] = 0.01
    return torch.from_numpy(d).float().to(points.device)


def random_points_in_shell(
    n: int, center: Tensor, r_in: float, r_out: float, generator: torch.Generator | None = None
) -> Tensor:
    """Points in a spherical shell, uniform in direction and in 1/r (dense near, sparse far) `[n, 3]`."""
    dirs = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=-1)
    u = torch.rand(n, 1, generator=generator)
    inv_r = 1.0 / r_in + u * (1.0 / r_out - 1.0 / r_in)
    return center + dirs / inv_r
