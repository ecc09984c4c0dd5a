"""One captured image and what is known about it, and the error every scene reader raises."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.errors import UserError


class SceneError(UserError, ValueError):
    """A scene on disk that cannot be read: names the file and the problem."""


@dataclass
class Frame:
    """One image of the capture and everything known about it (scene coordinates)."""

    image_path: Path
    camera: Camera  # intrinsics already undistorted when `distortion` is not None
    timestep: int = 0
    cam_name: str = "0"
    distortion: Tensor | None = None  # [k1, k2, p1, p2, k3] of the raw image, removed at load
    sky_mask_path: Path | None = None
    dynamic_mask_path: Path | None = None
    ego_to_world: Tensor | None = None  # [4, 4] vehicle-to-scene pose, driving scenes only
    lidar_points: Tensor | None = None  # [M, 3] scene-coordinate lidar hits of this frame's sweep
    loss_mask_path: Path | None = None  # pixels where this mask is 0 get no loss (nerfstudio `mask_path`)
    depth_path: Path | None = None  # dense depth image (.png 16-bit or .npy), z along the camera axis
    depth_scale: float = 1.0  # depth file value -> scene units
