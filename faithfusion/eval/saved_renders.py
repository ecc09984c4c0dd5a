"""Renders of an evaluation kept as images, so that the measures can be taken again elsewhere.

A GPU run evaluates with `--save-renders`: every evaluated view's render goes to
`RUN/eval/renders/{shift:+.1f}m/{timestep:03d}_{cam}.png` (8-bit PNG, what the metrics saw up to rounding).
`faithfusion eval --renders RUN/eval/renders` then measures those images instead of rendering, without the
model: FID/KID or a detector can run on a machine that never held the run's checkpoint.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from faithfusion.errors import UserError
from faithfusion.utils.atomic import atomic_write


class SavedRenderError(UserError):
    """A saved render is missing, unreadable or of the wrong size."""


def render_path(root: Path, shift: float, timestep: int, cam: str) -> Path:
    """Where the render of one evaluated view is kept."""
    return Path(root) / f"{shift:+.1f}m" / f"{timestep:03d}_{cam}.png"


def save_render(root: Path, shift: float, timestep: int, cam: str, rgb: Tensor) -> Path:
    """Write `rgb` [H, W, 3] in [0, 1] as an 8-bit PNG (atomically)."""
    arr = (rgb.detach().clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)  # [H, W, 3]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    path = render_path(root, shift, timestep, cam)
    atomic_write(path, buf.getvalue())
    return path


def load_render(root: Path, shift: float, timestep: int, cam: str, size: tuple[int, int]) -> Tensor:
    """The saved render of one view as [H, W, 3] float in [0, 1]; `size` = (H, W) the evaluation expects."""
    path = render_path(root, shift, timestep, cam)
    if not path.is_file():
        raise SavedRenderError(f"{path}: saved render missing (evaluate with --save-renders to write it)")
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0  # [H, W, 3]
    except OSError as err:
        raise SavedRenderError(f"{path}: not a readable image ({err})") from err
    if arr.shape[:2] != tuple(size):
        raise SavedRenderError(f"{path}: saved render is {arr.shape[1]}x{arr.shape[0]}, the view is "
                               f"{size[1]}x{size[0]} (another scene size or --scale?)")
    return torch.from_numpy(arr)
