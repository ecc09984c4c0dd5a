"""Which captured view a fixer takes as its reference: one rule for the curated training data and for fusion.

A view rendered from captured frame `i` (at any lane shift) takes frame `i`'s own image when `i` is a training
view. Any other camera takes the training view whose centre is nearest among those facing the same half-space
(optical axes less than 90 degrees apart), or the nearest of all when none faces it. A video window takes the
reference of its first frame.
"""

from __future__ import annotations

import torch

from faithfusion.cameras import Camera


class ReferencePicker:
    """The reference rule over the training views `ids` (frame indices) seen by `cameras`."""

    def __init__(self, ids: list[int], cameras: list[Camera]) -> None:
        if len(ids) != len(cameras) or not ids:
            raise ValueError(f"ReferencePicker: needs one camera per training view, "
                             f"got {len(ids)} ids and {len(cameras)} cameras")
        self.ids = list(ids)
        self._members = set(self.ids)
        self.centres = torch.stack([c.center.cpu() for c in cameras])  # [V, 3]
        self.axes = torch.stack([c.camtoworld[:3, 2].cpu() for c in cameras])  # [V, 3] optical axes

    def pick(self, camera: Camera, frame: int | None = None) -> int:
        """Frame index of the reference of `camera`, rendered from captured frame `frame` (None: no frame)."""
        if frame is not None and frame in self._members:
            return frame
        dist = (self.centres - camera.center.cpu()[None]).norm(dim=-1)  # [V]
        facing = (self.axes @ camera.camtoworld[:3, 2].cpu()) > 0  # [V]
        if facing.any():
            dist = torch.where(facing, dist, torch.full_like(dist, float("inf")))
        return self.ids[int(dist.argmin())]

    def pick_all(self, cameras: list[Camera], frames: list[int | None] | None = None) -> list[int]:
        """`pick` for each camera (with its frame, when `frames` is given)."""
        frames = [None] * len(cameras) if frames is None else list(frames)
        if len(frames) != len(cameras):
            raise ValueError(f"pick_all: {len(cameras)} cameras but {len(frames)} frames")
        return [self.pick(c, f) for c, f in zip(cameras, frames)]
