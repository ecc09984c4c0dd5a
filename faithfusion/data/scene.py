"""SceneData: what every reader produces and every trainer consumes.

All geometry inside a SceneData is in *scene* coordinates: the reader's world coordinates
mapped by `SceneTransform` (a similarity: centre, rotation, uniform scale) so that the captured
cameras fit a unit-sized region. `SceneTransform.to_world` maps any output back to metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.data.frame import Frame, SceneError
from faithfusion.data.images import load_frame_image, load_frame_mask
from faithfusion.data.novel_path import InterpolatedPath


@dataclass
class SceneTransform:
    """x_scene = scale * R (x_world - center). `scale` is scene units per world unit (metre)."""

    center: Tensor  # [3]
    rotation: Tensor  # [3, 3]
    scale: float

    @classmethod
    def identity(cls) -> "SceneTransform":
        return cls(torch.zeros(3), torch.eye(3), 1.0)

    def points_to_scene(self, x: Tensor) -> Tensor:  # [..., 3] -> [..., 3]
        return self.scale * (x - self.center) @ self.rotation.T

    def points_to_world(self, x: Tensor) -> Tensor:  # [..., 3] -> [..., 3]
        return (x / self.scale) @ self.rotation + self.center

    def pose_to_world(self, c2w: Tensor) -> Tensor:
        out = torch.eye(4, dtype=c2w.dtype)
        out[:3, :3] = self.rotation.T @ c2w[:3, :3]
        out[:3, 3] = self.points_to_world(c2w[:3, 3])
        return out

    def metres_to_scene(self, metres: float) -> float:
        return metres * self.scale

    def to_dict(self) -> dict:
        return {"center": self.center.tolist(), "rotation": self.rotation.tolist(), "scale": self.scale}


@dataclass
class SceneData:
    """Frames, cameras, points and labels of one scene, in scene coordinates."""

    frames: list[Frame]
    points: Tensor  # [N, 3] initial points (lidar or SfM), may be empty [0, 3]
    point_colors: Tensor | None  # [N, 3] in [0, 1] or None
    transform: SceneTransform
    train_ids: list[int]
    test_ids: list[int]
    source: str = ""
    kind: str = "generic"  # "driving" scenes get sky handling and lane shifts
    instances: dict | None = None
    extra: dict = field(default_factory=dict)
    novel_path: InterpolatedPath | None = None
    """Where novel cameras lie instead of a lane shift (the sparse-view protocol: between training views)."""

    def __post_init__(self) -> None:
        if not self.frames:
            raise SceneError(f"{self.source}: the scene has no frames")

    def load_image(self, index: int, scale: float = 1.0) -> Tensor:  # [H, W, 3] float in [0, 1]
        return load_frame_image(self.frames[index], scale)

    def load_sky_mask(self, index: int, scale: float = 1.0) -> Tensor | None:  # [H, W] bool
        frame = self.frames[index]
        if frame.sky_mask_path is None:
            return None
        return load_frame_mask(frame, frame.sky_mask_path, scale)  # undistorted like the image

    def load_loss_mask(self, index: int, scale: float = 1.0) -> Tensor | None:  # [H, W] bool, True = counts
        frame = self.frames[index]
        if frame.loss_mask_path is None:
            return None
        return load_frame_mask(frame, frame.loss_mask_path, scale)

    def load_depth(self, index: int, scale: float = 1.0) -> Tensor | None:  # [H, W] scene units, 0 = none
        from faithfusion.data.depth import load_frame_depth

        return load_frame_depth(self.frames[index], scale) if self.frames[index].depth_path is not None else None

    def camera(self, index: int, scale: float = 1.0) -> Camera:
        return self.frames[index].camera.scaled(scale) if scale != 1.0 else self.frames[index].camera

    def shifted_camera(self, index: int, metres: float, scale: float = 1.0) -> Camera:
        """The camera of frame `index` with its ego moved `metres` to the left (negative = right).

        Driving scenes shift along the ego's left axis; other scenes along the camera's own left
        (-x in OpenCV). Metres are converted with the scene transform. A scene with a `novel_path` moves
        along it instead (path metres, data/novel_path.py)."""
        from faithfusion.cameras import lane_shift_camera

        frame = self.frames[index]
        cam = self.camera(index, scale)
        if metres == 0.0:
            return cam
        if self.novel_path is not None:
            return self.novel_path.camera(cam, index, metres, lambda j: self.camera(j, scale))
        d = self.transform.metres_to_scene(metres)
        if frame.ego_to_world is not None:
            return lane_shift_camera(cam, frame.ego_to_world, d)
        c2w = cam.camtoworld.clone()
        c2w[:3, 3] = c2w[:3, 3] - d * c2w[:3, 0]
        return cam.with_camtoworld(c2w)

    def metres_to_scene(self, metres: float) -> float:
        """A distance of the novel cameras' schedules in scene units (path metres where a novel path is set)."""
        if self.novel_path is not None:
            return self.novel_path.metres_to_scene(metres)
        return self.transform.metres_to_scene(metres)

    def use_interpolated_path(self) -> InterpolatedPath:
        """Place novel cameras between the training views (in capture order) from now on; returns the path."""
        self.novel_path = InterpolatedPath.through({i: self.frames[i].camera for i in self.train_ids})
        return self.novel_path

    def summary(self) -> dict:
        return {
            "source": self.source,
            "kind": self.kind,
            "frames": len(self.frames),
            "train": len(self.train_ids),
            "test": len(self.test_ids),
            "points": int(self.points.shape[0]),
            "transform": self.transform.to_dict(),
        } | ({"novel_path": {"order": list(self.novel_path.order), "scene_units_per_metre": self.novel_path.unit}}
             if self.novel_path is not None else {})


def holdout_split(n: int, every: int) -> tuple[list[int], list[int]]:
    """Every `every`-th frame (0, every, 2*every, ...) held out for testing; every <= 0 keeps all."""
    if every <= 0:
        return list(range(n)), []
    test = list(range(0, n, every))
    train = [i for i in range(n) if i % every != 0]
    return train, test
