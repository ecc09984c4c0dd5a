"""Image metrics: PSNR, SSIM (and its per-pixel map for the training loss), LPIPS, and `Metrics`.

Images are `[..., H, W, 3]` floats in [0, 1] (data range 1). SSIM is the standard one
(Wang et al. 2004) with an 11-tap Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, population
(co)variances, averaged over the region the window fits in (as torchmetrics and
skimage.metrics.structural_similarity(gaussian_weights=True, use_sample_covariance=False) do).
"""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from faithfusion.eval.lpips import LPIPS, LPIPS_NAME

log = logging.getLogger(__name__)

Reduction = Literal["mean", "none"]

MAX_PSNR_MSE_FLOOR = 1e-10  # identical images give 100 dB instead of inf, so means stay finite


def _check_pair(pred: Tensor, target: Tensor, name: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"{name}: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if pred.ndim < 3 or pred.shape[-1] != 3:
        raise ValueError(f"{name}: need images [..., H, W, 3], got {tuple(pred.shape)}")


def _reduce(x: Tensor, reduction: Reduction) -> Tensor:
    return x.mean() if reduction == "mean" else x


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None, reduction: Reduction = "mean") -> Tensor:
    """Per-image PSNR in dB `[...]` (data range 1), averaged over images when reduction="mean".

    mask: `[..., H, W]` or `[..., H, W, 1]` (bool or weights); only masked pixels count.
    The MSE is floored at 1e-10 (100 dB) so that identical images give a finite value.
    """
    _check_pair(pred, target, "psnr")
    err = (pred.float() - target.float()) ** 2  # [..., H, W, 3]
    if mask is None:
        mse = err.mean(dim=(-3, -2, -1))  # [...]
    else:
        m = mask.float()
        if m.shape == pred.shape[:-1]:
            m = m[..., None]  # [..., H, W, 1]
        m = m.expand_as(err)
        count = m.sum(dim=(-3, -2, -1))
        if (count <= 0).any():
            raise ValueError("psnr: the mask selects no pixel in at least one image")
        mse = (err * m).sum(dim=(-3, -2, -1)) / count
    return _reduce(-10.0 * torch.log10(mse.clamp_min(MAX_PSNR_MSE_FLOOR)), reduction)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Normalised 1-D Gaussian `[size]` centred on the middle tap."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=32)
def ssim_kernels(window: int, sigma: float, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """The separable depthwise SSIM kernels `[15, 1, 1, window]` and `[15, 1, window, 1]` (5 maps x 3 channels),
    built once per (window, sigma, dtype, device): no host-to-device copy in each training step's loss."""
    with torch.inference_mode(False), torch.no_grad():  # plain tensors, usable by autograd whatever the caller's mode
        g = gaussian_window(window, sigma, dtype, device)
        return g.view(1, 1, 1, window).repeat(15, 1, 1, 1), g.view(1, 1, window, 1).repeat(15, 1, 1, 1)


def ssim_map(
    pred: Tensor,
    target: Tensor,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    padding: Literal["same", "valid"] = "same",
) -> Tensor:
    """Per-pixel, per-channel SSIM `[..., H', W', 3]`. Differentiable (the training loss uses it).

    padding="same": zero padding, H' = H (the convention of the 3DGS training loss and fused-ssim);
    padding="valid": only where the window fits, H' = H - window + 1 (the evaluation metric).
    """
    _check_pair(pred, target, "ssim")
    h, w = pred.shape[-3:-1]
    if padding == "valid" and (h < window or w < window):
        raise ValueError(f"ssim: images {h}x{w} are smaller than the {window}x{window} window")
    batch = pred.shape[:-3]
    dtype = torch.promote_types(pred.dtype, torch.float32)
    x = pred.to(dtype).reshape(-1, h, w, 3).permute(0, 3, 1, 2)  # [B, 3, H, W]
    y = target.to(dtype).reshape(-1, h, w, 3).permute(0, 3, 1, 2)
    pad = window // 2 if padding == "same" else 0
    gx, gy = ssim_kernels(window, float(sigma), dtype, pred.device)  # 5 maps x 3 channels, depthwise
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # [B, 15, H, W]
    blur = F.conv2d(F.conv2d(stack, gx, padding=(0, pad), groups=15), gy, padding=(pad, 0), groups=15)
    mu_x, mu_y, e_xx, e_yy, e_xy = blur.split(3, dim=1)  # each [B, 3, H', W']
    var_x = e_xx - mu_x**2
    var_y = e_yy - mu_y**2
    cov = e_xy - mu_x * mu_y
    c1, c2 = k1**2, k2**2  # data range 1
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.permute(0, 2, 3, 1).reshape(*batch, *s.shape[-2:], 3)  # [..., H', W', 3]


def ssim(pred: Tensor, target: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Per-image SSIM `[...]` (mean over the valid region and the channels), or its mean over images."""
    return _reduce(ssim_map(pred, target, padding="valid").mean(dim=(-3, -2, -1)), reduction)


_LPIPS_CACHE: dict[tuple[str, str], LPIPS] = {}


def lpips(pred: Tensor, target: Tensor, weights: str | Path | None = None, reduction: Reduction = "mean") -> Tensor:
    """LPIPS (squeeze, v0.1) of `[..., H, W, 3]` images in [0, 1]; the network is built once per device."""
    _check_pair(pred, target, "lpips")
    key = (str(weights), str(pred.device))
    if key not in _LPIPS_CACHE:
        _LPIPS_CACHE[key] = LPIPS(weights).to(pred.device)
    return _reduce(_LPIPS_CACHE[key](pred, target), reduction)


SSIM_MIN_SIDE = 11
"""SSIM's Gaussian window is 11 px wide."""
LPIPS_MIN_SIDE = 17
"""SqueezeNet's strided layers leave nothing of an image with a side under 17 px."""


class Metrics:
    """PSNR / SSIM / LPIPS of a batch as floats (means over the batch).

    SSIM and LPIPS are None for images too small for them (a side under SSIM_MIN_SIDE / LPIPS_MIN_SIDE).

    LPIPS is never silently off: missing weights raise LPIPSWeightsError (they ship in the package);
    `use_lpips=False` or images too small for it leave it None, and `lpips_net` (written beside the
    figures in every result) then says "unavailable" and why. A mask restricts PSNR only; SSIM and
    LPIPS use the whole image.
    """

    def __init__(self, lpips_weights: str | Path | None = None, use_lpips: bool = True) -> None:
        self.net: LPIPS | None = LPIPS(lpips_weights) if use_lpips else None
        self.warned_small = False

    @property
    def lpips_net(self) -> str:
        """The LPIPS network behind the figures, or 'unavailable: WHY' (for the `lpips_net` entry of results)."""
        if self.net is None:
            return "unavailable: LPIPS turned off (use_lpips=False)"
        if self.warned_small:
            return f"{LPIPS_NAME}; unavailable for images under {LPIPS_MIN_SIDE} px a side (left out)"
        return LPIPS_NAME

    @torch.no_grad()
    def __call__(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> dict[str, float | None]:
        if pred.ndim == 3:  # a single image [H, W, 3]
            pred, target = pred[None], target[None]
            mask = None if mask is None else mask[None]
        pred, target = pred.clamp(0, 1), target.clamp(0, 1)
        side = min(pred.shape[-3], pred.shape[-2])
        out: dict[str, float | None] = {
            "psnr": float(psnr(pred, target, mask)),
            "ssim": float(ssim(pred, target)) if side >= SSIM_MIN_SIDE else None,
            "lpips": None,
        }
        if side < LPIPS_MIN_SIDE and not self.warned_small:
            log.warning("images of %dx%d px: LPIPS needs at least %d px a side, SSIM %d; those left out",
                        pred.shape[-2], pred.shape[-3], LPIPS_MIN_SIDE, SSIM_MIN_SIDE)
            self.warned_small = True
        if self.net is not None and side >= LPIPS_MIN_SIDE:
            self.net.to(pred.device)
            out["lpips"] = float(self.net(pred, target).mean())
        if not all(v is None or math.isfinite(v) for v in out.values()):
            raise ValueError(f"Metrics: non-finite result {out} (NaN in the images?)")
        return out
