"""Dense depth images (nerfstudio `depth_file_path`): 16-bit PNG or .npy, z along the camera axis.

A file value times the frame's `depth_scale` is the depth in scene units (nerfstudio: value x
`depth_unit_scale_factor` = metres, then the scene transform's scale). 0, NaN and inf mean "no depth";
the trainer's dense depth term skips them. Resizing and undistortion sample the nearest pixel, so
depths are never averaged across an edge.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from faithfusion.data.frame import Frame, SceneError
from faithfusion.data.images import _undistort_grid


def read_depth_file(path: Path) -> np.ndarray:  # [H, W] float64, file units
    """The raw depth values of a .npy or a single-channel (16-bit) image; SceneError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: depth file is missing")
    try:
        if path.suffix.lower() == ".npy":
            depth = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as img:
                if img.mode not in ("I;16", "I;16B", "I;16L", "I", "F", "L"):
                    raise SceneError(f"{path}: a depth image must have one channel (16-bit or float), got mode {img.mode}")
                depth = np.asarray(img)
    except (OSError, ValueError) as e:
        raise SceneError(f"{path}: cannot read depth ({type(e).__name__}: {e})") from e
    depth = np.squeeze(np.asarray(depth, dtype=np.float64))
    if depth.ndim != 2:
        raise SceneError(f"{path}: depth must be one value per pixel [H, W], got shape {depth.shape}")
    return depth


def load_frame_depth(frame: Frame, scale: float = 1.0) -> Tensor:  # [H, W] float32, scene units, 0 = none
    """The frame's depth in its (undistorted, scaled) pixel grid, in scene units."""
    assert frame.depth_path is not None
    raw = read_depth_file(frame.depth_path)
    cam = frame.camera.scaled(scale) if scale != 1.0 else frame.camera
    h, w = raw.shape
    if abs(w * cam.height - h * cam.width) > 0.01 * w * cam.height:
        raise SceneError(f"{frame.depth_path}: depth of {w}x{h} does not have the aspect of its image {cam.width}x{cam.height}")
    depth = torch.from_numpy(raw * frame.depth_scale).float()
    depth = torch.where(torch.isfinite(depth) & (depth > 0), depth, torch.zeros_like(depth))
    if depth.shape != (cam.height, cam.width):
        depth = F.interpolate(depth[None, None], size=(cam.height, cam.width), mode="nearest")[0, 0]
    if frame.distortion is not None and bool(torch.as_tensor(frame.distortion).abs().sum() > 0):
        K = cam.K
        Kt = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
        dist = tuple(float(d) for d in torch.as_tensor(frame.distortion).flatten().tolist())
        grid = _undistort_grid(Kt, dist, cam.width, cam.height)  # [1, H, W, 2]
        depth = F.grid_sample(depth[None, None], grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]
    return depth
