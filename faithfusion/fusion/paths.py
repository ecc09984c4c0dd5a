"""Where the novel cameras are: lane-shift targets, Difix3D's progressive poses and GenFusion's windows.

All positions are in scene units; shifts are given in metres and converted by `scene.shifted_camera`.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor

from faithfusion.cameras import Camera, interpolate_pose
from faithfusion.data.scene import SceneData


def target_cameras(scene: SceneData, ids: list[int], shifts: tuple[float, ...], scale: float = 1.0) -> list[Camera]:
    """The lane-shift cameras of frames `ids` at every shift (metres, left +), shift-major order."""
    cams = []
    for s in shifts:
        for i in ids:
            cam = scene.shifted_camera(i, s, scale)
            cams.append(_named(cam, f"{i:04d}@{s:+.2f}m"))
    return cams


def _named(cam: Camera, name: str) -> Camera:
    from dataclasses import replace

    return replace(cam, name=name)


def centers(cameras: list[Camera]) -> Tensor:  # [M, 3]
    return torch.stack([c.center.cpu() for c in cameras])


def nearest(cameras: list[Camera], point: Tensor) -> int:
    """Index of the camera whose centre is nearest to `point` `[3]` (first one on ties)."""
    d = (centers(cameras) - point.cpu()).norm(dim=-1)
    return int(torch.argmin(d))


def step_pose_toward(c2w: Tensor, target_c2w: Tensor, distance: float) -> Tensor:
    """Move camera-to-world `c2w` [4,4] by `distance` (scene units) along the straight line to `target_c2w`;
    the rotation follows by SLERP at the same fraction. Reaches the target exactly when closer than `distance`."""
    gap = float((target_c2w[:3, 3] - c2w[:3, 3]).norm())
    if gap <= distance or gap == 0.0:
        return target_c2w.clone()
    return interpolate_pose(c2w, target_c2w, distance / gap)


def progressive_poses(current: list[Camera], targets: list[Camera], distance: float) -> list[Camera]:
    """Difix3D's rule: for each target, the nearest current camera moved `distance` toward it (SLERP rotation).

    `current` is every pose the model has been trained on so far (captured + earlier novel poses);
    the result keeps each target's intrinsics, size and name."""
    out = []
    for tgt in targets:
        start = current[nearest(current, tgt.center)]
        c2w = step_pose_toward(start.camtoworld.cpu(), tgt.camtoworld.cpu(), distance)
        out.append(tgt.to("cpu").with_camtoworld(c2w))
    return out


def sequences(scene: SceneData, ids: list[int]) -> list[list[int]]:
    """Frames `ids` grouped per physical camera and ordered by time: the paths a video fixer walks. A scene with a
    novel path (the sparse-view protocol) has one: its training frames in capture order."""
    if scene.novel_path is not None:
        return [sorted(ids)] if ids else []
    groups: dict[str, list[int]] = defaultdict(list)
    for i in ids:
        groups[scene.frames[i].cam_name].append(i)
    return [sorted(g, key=lambda i: scene.frames[i].timestep) for _, g in sorted(groups.items())]


def windows(scene: SceneData, ids: list[int], length: int) -> list[list[int]]:
    """Consecutive windows of at most `length` frames along each camera's path."""
    out = []
    for seq in sequences(scene, ids):
        out.extend(seq[k : k + length] for k in range(0, len(seq), max(1, length)))
    return out
