"""The `combined` map: per view, the mean of the rank-normalised pixel EIG and image gradient of the render.

Each input is replaced by its empirical CDF over the view's pixels, r(x_i) = (#{x_j < x_i} + (#{x_j = x_i} + 1) / 2)
/ n (the average rank over n, ties averaged), and the two are averaged with equal weights. The rule and why:
docs/record/2026-12-05-combined-map.md.
"""

from __future__ import annotations

import torch
from torch import Tensor

COMBINED = "combined"
INPUT_FORM = "pixel"  # the EIG form it combines with the image gradient


def rank_normalise(x: Tensor) -> Tensor:
    """Empirical CDF of every element over all elements of `x` (any shape), ties averaged: values in (0, 1]."""
    flat = x.reshape(-1)
    n = flat.numel()
    if n == 0:
        return x.new_zeros(x.shape, dtype=torch.float32 if not x.is_floating_point() else x.dtype)
    if not torch.isfinite(flat).all():
        raise ValueError("rank_normalise: the map has NaN or infinite values")
    _, inverse, counts = torch.unique(flat, sorted=True, return_inverse=True, return_counts=True)
    below = torch.cumsum(counts, 0) - counts  # [U] elements strictly below each distinct value
    r = (below.double() + (counts.double() + 1.0) / 2.0) / n  # [U]
    dtype = x.dtype if x.is_floating_point() else torch.float32
    return r[inverse].reshape(x.shape).to(dtype)


def image_gradient(rgb: Tensor) -> Tensor:
    """Image-gradient magnitude of a render `[H, W, 3]` -> `[H, W]` (central differences, channel mean)."""
    x = rgb.permute(2, 0, 1)[None]
    x = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")[0]
    gx = 0.5 * (x[:, 1:-1, 2:] - x[:, 1:-1, :-2])
    gy = 0.5 * (x[:, 2:, 1:-1] - x[:, :-2, 1:-1])
    return (gx * gx + gy * gy).sqrt().mean(0)


def combined_map(eig: Tensor, grad: Tensor) -> Tensor:
    """½ r(eig) + ½ r(grad), both `[H, W]` of one view -> `[H, W]` in (0, 1]."""
    if eig.shape != grad.shape:
        raise ValueError(f"combined_map: EIG {tuple(eig.shape)} and gradient {tuple(grad.shape)} differ in shape")
    return 0.5 * (rank_normalise(eig).float() + rank_normalise(grad).float())
