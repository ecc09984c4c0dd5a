"""Colour heatmaps of EIG maps (matplotlib colormaps), written as PNG beside the renders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor

from faithfusion.utils.atomic import atomic_write


def colorize(values: np.ndarray | Tensor, vmin: float = 0.0, vmax: float | None = None, cmap: str = "inferno") -> np.ndarray:
    """`[H, W]` values -> `[H, W, 3]` uint8 through a matplotlib colormap (vmax: the 99.5th percentile if None)."""
    from matplotlib import colormaps

    v = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    v = v.astype(np.float64)
    finite = v[np.isfinite(v)]
    if vmax is None:
        vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    vmax = vmax if vmax > vmin else vmin + 1e-12
    t = np.clip((np.nan_to_num(v, nan=vmin, posinf=vmax) - vmin) / (vmax - vmin), 0.0, 1.0)
    return (colormaps[cmap](t)[..., :3] * 255).round().astype(np.uint8)


def save_png(path: Path, rgb: np.ndarray | Tensor) -> None:
    """uint8 `[H, W, 3]` or float in [0, 1] (`[H, W]` or `[H, W, 3]`) to PNG, written atomically."""
    import imageio.v3 as iio

    a = rgb.detach().cpu().numpy() if isinstance(rgb, Tensor) else np.asarray(rgb)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255).round().astype(np.uint8)
    atomic_write(path, save=lambda tmp: iio.imwrite(tmp, a, extension=".png"))


def save_heatmap(path: Path, values: np.ndarray | Tensor, vmin: float = 0.0, vmax: float | None = None, cmap: str = "inferno") -> None:
    save_png(path, colorize(values, vmin, vmax, cmap))
