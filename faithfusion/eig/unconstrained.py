"""Which Gaussians did training never constrain, and how much of a pixel do they make?

A Gaussian's training constraint is h_i = sum over its parameters (all groups of H_train, every scalar) of
H_train, negatives from rounding clamped to 0. It counts as unconstrained when

    h_i <= tau,   tau = the `quantile` (default 0.01, the 1st percentile) of h over the Gaussians with h > 0

so every Gaussian with h = 0 (never blended into a training pixel, or only into sky-masked ones) and the
faintest 1 % of the others. The per-pixel map is the fraction of the pixel's blending weight that comes
from them, sum_i w_i [h_i <= tau] / sum_i w_i, with the same weights as the render; pixels that no Gaussian
covers (accumulated alpha < alpha_min) get 1, as the EIG maps treat them as maximal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.eig.fisher import prepare_view, resolve_backend
from faithfusion.eig.maps import ALPHA_MIN, composite_scalar
from faithfusion.gaussians.model import GaussianModel

UNCONSTRAINED_QUANTILE = 0.01


def training_constraint(H_train: Mapping[str, Tensor]) -> Tensor:
    """h_i: H_train summed over every parameter scalar of Gaussian i `[N]`."""
    total = None
    for h in H_train.values():
        s = h.clamp_min(0.0).reshape(h.shape[0], -1).sum(-1).double()
        total = s if total is None else total + s
    return total


@dataclass
class UnconstrainedGaussians:
    """The unconstrained Gaussians of a model (`mask [N]`) and the rule's numbers, for the record."""

    mask: Tensor  # [N] bool
    threshold: float  # tau
    quantile: float
    zero: int  # Gaussians with h = 0

    @classmethod
    def from_h_train(cls, H_train: Mapping[str, Tensor], quantile: float = UNCONSTRAINED_QUANTILE):
        h = training_constraint(H_train)  # [N]
        pos = h[h > 0]
        if pos.numel() > 1_000_000:  # torch.quantile's size limit: an even subsample is as good
            pos = pos[torch.linspace(0, pos.numel() - 1, 1_000_000, device=pos.device).long()]
        tau = float(torch.quantile(pos, quantile)) if pos.numel() and quantile > 0 else 0.0
        return cls(h <= tau, tau, quantile, int((h <= 0).sum()))

    def to_dict(self) -> dict:
        n = int(self.mask.numel())
        return {"rule": f"h_i <= the {self.quantile:g}-quantile of h over Gaussians with h > 0",
                "threshold": self.threshold, "quantile": self.quantile, "gaussians": n,
                "unconstrained": int(self.mask.sum()), "zero": self.zero}

    def pixel_fraction(self, model: GaussianModel, camera: Camera, *, alpha_min: float = ALPHA_MIN,
                       max_pairs: int | None = None, backend: str = "auto") -> Tensor:
        """The fraction of each pixel's blending weight from unconstrained Gaussians `[H, W]` (1 where uncovered)."""
        backend = resolve_backend(backend, model.device)
        vp = prepare_view(model, camera, max_pairs=max_pairs, plan=backend == "torch", jacobian=False)
        sums = composite_scalar(vp, self.mask.to(vp.vq.opacities), backend)
        frac = (sums.wI / sums.alpha.clamp_min(1e-12)).clamp(0.0, 1.0)
        return torch.where(sums.alpha >= alpha_min, frac, torch.ones_like(frac))
