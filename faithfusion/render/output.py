"""What every render backend returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class RenderOutput:
    rgb: Tensor  # [C, H, W, 3]
    depth: Tensor  # [C, H, W, 1] expected depth (alpha-normalised z in camera space)
    alpha: Tensor  # [C, H, W, 1] accumulated opacity
    info: dict = field(default_factory=dict)  # per-Gaussian meta, gsplat's keys
