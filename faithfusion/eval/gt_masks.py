"""SynthStreet's per-pixel ground-truth masks of a lane-shifted view, where the scene folder has them:

    gt_shifted/{d:+.1f}m/sky_masks/{t:03d}_{cam}.png     255 = sky
    gt_shifted/{d:+.1f}m/unobserved/{t:03d}_{cam}.png    255 = surface no training camera saw (sky excluded)
    gt_shifted/{d:+.1f}m/disoccluded/{t:03d}_{cam}.png   255 = surface hidden from the recorded lane (sky excluded)

uint8 PNGs; resized to the render size by area averaging and thresholded at one half.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from faithfusion.data.frame import SceneError

MASK_KINDS = ("unobserved", "disoccluded")


def gt_mask_path(root: Path, d: float, kind: str, timestep: int, cam: str) -> Path:
    return Path(root) / "gt_shifted" / f"{d:+.1f}m" / kind / f"{timestep:03d}_{cam}.png"


def has_gt_masks(root: Path, d: float, kind: str) -> bool:
    """Does the scene have the `kind` masks of shift `d` (its folder exists and holds a PNG)?"""
    folder = Path(root) / "gt_shifted" / f"{d:+.1f}m" / kind
    return folder.is_dir() and any(folder.glob("*.png"))


def load_gt_mask(root: Path, d: float, kind: str, timestep: int, cam: str, size: tuple[int, int]) -> Tensor:
    """The `kind` mask of one shifted view as bool `[H, W]` at `size` = (H, W); SceneError if missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    path = gt_mask_path(root, d, kind, timestep, cam)
    if not path.is_file():
        raise SceneError(f"{path}: ground-truth {kind} mask missing")
    try:
        img = Image.open(path).convert("L")
    except (OSError, UnidentifiedImageError) as e:
        raise SceneError(f"{path}: not a readable mask image ({e})") from None
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.BOX)
    return torch.from_numpy(np.asarray(img) >= 128)
