"""Front-to-back blending of one chunk of (pixel, Gaussian) pairs, and the colour's derivative per pair.

gsplat's rules, as the torch backend applies them: sigma = 0.5 (a dx^2 + c dy^2) + b dx dy at pixel
centres, alpha = min(0.999, o exp(-sigma)), pairs with alpha < 1/255 skipped, a pixel stops before the
Gaussian that would bring its transmittance to <= 1e-4. Here everything is closed form over `[B, P, K]`
(K last, the scans run along it): the weights w = alpha T, and the derivatives that the Fisher needs

    dc_k/dalpha_i = f_ik T_i - S_ik / (1 - alpha_i),   S_ik = sum_{j>i} w_j f_jk + T_final bg_k
    dalpha_i/dsigma_i = -alpha_i   (0 where alpha is clamped at 0.999, skipped or stopped).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from faithfusion.render.raster import ALPHA_THRESHOLD, MAX_ALPHA, T_STOP, log_alpha_coefs


@dataclass
class PairBlend:
    alpha: Tensor  # [B, P, K] blended alpha, 0 where skipped or stopped
    T_front: Tensor  # [B, P, K] transmittance in front of each Gaussian
    weight: Tensor  # [B, P, K] alpha * T_front
    slope: Tensor  # [B, P, K] dalpha/dsigma: -alpha where blended and not clamped, else 0
    T_final: Tensor  # [B, P] transmittance behind the last blended Gaussian
    inv_one_minus: Tensor  # [B, P, K] 1 / (1 - alpha)


def monomials(xy: Tensor, degree: int) -> Tensor:
    """x^a y^b of pixel offsets `xy [P, 2]` for a, b in 0..degree -> `[P, (degree+1)^2]` (index a * (degree+1) + b)."""
    x, y = xy[:, 0], xy[:, 1]
    e = torch.arange(degree + 1, device=xy.device, dtype=xy.dtype)
    px = x[:, None] ** e  # [P, d+1]
    py = y[:, None] ** e
    return (px[:, :, None] * py[:, None, :]).reshape(xy.shape[0], -1)


def blend_pairs(quad: Tensor, m: Tensor, conic: Tensor, o: Tensor, always_stop: bool = False) -> PairBlend:
    """Blend a chunk: `quad [P, 6]` = (1, x, y, x^2, xy, y^2) of the block's pixel offsets; `o [B, K]` 0 on padding.

    `always_stop` applies the transmittance stop without first asking whether any pixel reaches it
    (no host sync: CUDA, torch.compile)."""
    raw = torch.matmul(quad, log_alpha_coefs(m, conic, o).transpose(1, 2)).exp_()  # [B, P, K] o exp(-sigma)
    alpha = torch.where(raw >= ALPHA_THRESHOLD, raw.clamp_max(MAX_ALPHA), torch.zeros_like(raw))
    T_incl = torch.log1p(-alpha).cumsum_(-1).exp_()  # [B, P, K] behind each Gaussian
    if always_stop or alpha.is_cuda or bool((T_incl[..., -1] <= T_STOP).any()):
        alpha = alpha * (T_incl > T_STOP)  # the stopped Gaussians are a suffix (T_incl never rises)
        T_incl = torch.log1p(-alpha).cumsum_(-1).exp_()
    T_front = torch.cat([torch.ones_like(T_incl[..., :1]), T_incl[..., :-1]], -1)
    slope = torch.where(raw < MAX_ALPHA, -alpha, torch.zeros_like(alpha))
    inv = torch.rsub(alpha, 1.0).reciprocal_()
    return PairBlend(alpha, T_front, alpha * T_front, slope, T_incl[..., -1], inv)


def blended_pairs(quad: Tensor, m: Tensor, conic: Tensor, o: Tensor, always_stop: bool = False) -> Tensor:
    """`blend_pairs(...).alpha > 0` `[B, P, K]` without the rest of the blend: the pairs a pixel blends (alpha
    past the 1/255 cut, in front of the transmittance stop), computed by the same operations."""
    raw = torch.matmul(quad, log_alpha_coefs(m, conic, o).transpose(1, 2)).exp_()  # [B, P, K] o exp(-sigma)
    alpha = torch.where(raw >= ALPHA_THRESHOLD, raw.clamp_max(MAX_ALPHA), torch.zeros_like(raw))
    T_incl = torch.log1p(-alpha).cumsum_(-1).exp_()  # [B, P, K] behind each Gaussian
    used = alpha > 0
    if always_stop or alpha.is_cuda or bool((T_incl[..., -1] <= T_STOP).any()):
        used &= T_incl > T_STOP  # alpha * (T_incl > T_STOP) > 0
    return used


def colour_alpha_grad(bl: PairBlend, f: Tensor, bg: Tensor | None) -> Tensor:
    """dc_k/dalpha_i of one channel: `f [B, K]` the Gaussians' colour, `bg [B, P]` or None -> `[B, P, K]`."""
    acc = torch.cumsum(bl.weight * f[:, None, :], -1)  # [B, P, K] colour blended up to and including i
    total = acc[..., -1:].clone()
    if bg is not None:
        total += (bl.T_final * bg)[..., None]
    # acc - total = -S_i, the colour behind i (background included)
    return acc.sub_(total).mul_(bl.inv_one_minus).addcmul_(bl.T_front, f[:, None, :].expand_as(acc))
