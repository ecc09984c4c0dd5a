"""The sinusoidal timestep embedding of diffusion UNets (DDPM / Stable Diffusion's `Timesteps`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:  # [N] -> [N, dim]
    """cos/sin features of timesteps `t` at `dim // 2` log-spaced frequencies (cos first, as SD's `flip_sin_to_cos`)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # [N, half]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb
