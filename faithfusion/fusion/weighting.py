"""What the EIG maps of a fused view become: the arms of the EIG ablation (`--faithfusion.weighting`).

For each fused view FaithFusion derives three maps from its calibrated EIG g (eig/calibrate.py):
the loss weight w = cal.weight(g) in [w_min, 1], the fixer's condition c = g, and Difix's blend mask
m = cal.soft_mask(g). An arm changes all three the same way, so that only the spatial information differs:

| arm | w, c, m of a view |
| --- | --- |
| `eig` | as computed (FaithFusion) |
| `uniform` | each replaced by a constant: its own mean over the view's pixels (same total weight, no spatial information) |
| `shuffled` | the view's pixels permuted at random, one permutation per view shared by w, c and m (same histogram, no placement) |
| `none` | no EIG: w = 1, c = 1, m = 1 (Difix's output taken everywhere), no Fisher (exactly `faithfusion-no-eig`) |

The photometric loss normalises by the weight sum (train/losses.py), so `uniform` trains each fused view as
an unweighted one; its mean is kept so that H_train (fused views join it weighted by w) sees the same mass.
The shuffle is drawn from a generator seeded by (run seed, round index), so a resumed run draws the same one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from faithfusion.errors import UserError

WEIGHTINGS = ("eig", "uniform", "shuffled", "none")


class UnknownWeightingError(UserError, ValueError):
    pass


@dataclass
class FusedMaps:
    """The maps of one window of fused views."""

    weight: Tensor  # [T, H, W] loss weight
    cond: Tensor  # [T, H, W] the fixer's EIG condition
    soft_mask: Tensor  # [T, H, W] in [0, 1], Difix's blend mask


def check_weighting(name: str) -> str:
    if name not in WEIGHTINGS:
        raise UnknownWeightingError(f"--faithfusion.weighting {name!r}: expected one of {', '.join(WEIGHTINGS)}")
    return name


def uniform_like(x: Tensor) -> Tensor:
    """Each view `[T, H, W]` replaced by its own mean over its pixels."""
    return x.mean(dim=(1, 2), keepdim=True).expand_as(x).clone()


def shuffle_pixels(maps: list[Tensor], generator: torch.Generator) -> list[Tensor]:
    """The pixels of each view permuted at random, the same permutation for every map of `maps` (each `[T, H, W]`)."""
    t, h, w = maps[0].shape
    out = [torch.empty_like(m) for m in maps]
    for k in range(t):
        perm = torch.randperm(h * w, generator=generator).to(maps[0].device)  # [H*W]
        for m, o in zip(maps, out):
            o[k] = m[k].reshape(-1)[perm].reshape(h, w)
    return out


def apply_weighting(arm: str, maps: FusedMaps, generator: torch.Generator | None = None) -> FusedMaps:
    """The maps of arm `arm` from FaithFusion's own (`eig`). `none` needs no maps: the method skips EIG for it."""
    check_weighting(arm)
    if arm == "eig":
        return maps
    if arm == "uniform":
        return FusedMaps(uniform_like(maps.weight), uniform_like(maps.cond), uniform_like(maps.soft_mask))
    if arm == "shuffled":
        if generator is None:
            raise ValueError("the shuffled weighting needs a seeded generator")
        return FusedMaps(*shuffle_pixels([maps.weight, maps.cond, maps.soft_mask], generator))
    ones = torch.ones_like(maps.weight)
    return FusedMaps(ones, ones.clone(), ones.clone())


class Weighting:
    """One run's arm and the generator of its shuffles (re-seeded at each round from the run seed and the round)."""

    def __init__(self, arm: str, seed: int = 0) -> None:
        self.arm = check_weighting(arm)
        self.seed = seed
        self.generator = torch.Generator()

    @property
    def uses_eig(self) -> bool:
        return self.arm != "none"

    def start_round(self, index: int) -> None:
        self.generator.manual_seed(self.seed * 100_003 + index)

    def maps(self, calibration, eig_maps) -> FusedMaps:
        """The arm's maps of a window from `session.eig` outputs `[(map, g [H, W])] * T`."""
        eig = FusedMaps(
            weight=torch.stack([calibration.weight(g, m.covered) for m, g in eig_maps]),  # [T, H, W] in [w_min, 1]
            cond=torch.stack([g for _, g in eig_maps]),  # [T, H, W] calibrated EIG, as in the curated data
            soft_mask=torch.stack([calibration.soft_mask(g, m.covered) for m, g in eig_maps]),  # [T, H, W]
        )
        return apply_weighting(self.arm, eig, self.generator)
