"""A Gaussian's log-alpha over a block of pixels as a quadratic polynomial: one matrix product per chunk.

sigma = 0.5 (a dx^2 + c dy^2) + b dx dy at the pixel centres (x + 0.5, y + 0.5), alpha = o exp(-sigma)
before the 1/255 cut and the 0.999 clamp. With the pixel offsets from the block's centre as the
monomials (1, x, y, x^2, xy, y^2) and the Gaussian's mean relative to the same centre, log(alpha) of
every (pixel, Gaussian) pair of a chunk is `pixel_quadratics(...) @ log_alpha_coefs(...)^T`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def pixel_quadratics(size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Monomials (1, x, y, x^2, xy, y^2) of the pixel centres of a `size x size` block, relative to its centre `[P, 6]`."""
    r = torch.arange(size, device=device, dtype=dtype) + 0.5 - 0.5 * size
    py, px = torch.meshgrid(r, r, indexing="ij")
    px, py = px.reshape(-1), py.reshape(-1)
    return torch.stack([torch.ones_like(px), px, py, px * px, px * py, py * py], -1)


def log_alpha_coefs(m: Tensor, conic: Tensor, o: Tensor) -> Tensor:
    """log(o) - sigma as coefficients of (1, x, y, x^2, xy, y^2) for means `m [B, K, 2]` (block-centred),
    conics `[B, K, 3]`, opacities `o [B, K]` -> `[B, K, 6]`; padding (o = 0) gets a vanishing alpha."""
    mx, my = m.unbind(-1)
    a, b, c = conic.unbind(-1)
    return torch.stack(
        [
            torch.log(o.clamp_min(1e-30)) - (0.5 * a * mx * mx + 0.5 * c * my * my + b * mx * my),
            a * mx + b * my,
            c * my + b * mx,
            -0.5 * a,
            -b,
            -0.5 * c,
        ],
        dim=-1,
    )
