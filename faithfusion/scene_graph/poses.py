"""How are node poses applied? Quaternion products, the small se(3) refinement, and point-in-box tests.

All quaternions are wxyz, as GaussianModel stores them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from faithfusion.cameras import quat_multiply, quat_to_rotmat, rotmat_to_quat  # noqa: F401 (quat_multiply re-exported)


def delta_quat(omega: Tensor) -> Tensor:
    """A small rotation `[..., 3]` (axis * angle, radians) as a unit quaternion `[..., 4]`: normalize(1, omega/2).

    Equal to the exponential map to first order, smooth everywhere (also at 0, where the exact map's
    norm is not differentiable), and it covers every rotation of less than 180 degrees."""
    q = torch.cat([torch.ones_like(omega[..., :1]), 0.5 * omega], dim=-1)
    return q / q.norm(dim=-1, keepdim=True)


def refined_pose(pose: Tensor, delta: Tensor, q_box: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Box poses `[..., 4, 4]` refined by deltas `[..., 6]` (rotation omega, translation, both in the box frame):
    T = pose @ [R(omega) | t]. Returns (unit quaternion `[..., 4]`, translation `[..., 3]`) of T. `q_box`: the
    poses' rotations as quaternions when known."""
    if q_box is None:
        q_box = rotmat_to_quat(pose[..., :3, :3])
    q = quat_multiply(q_box, delta_quat(delta[..., :3]))
    t = pose[..., :3, 3] + (pose[..., :3, :3] @ delta[..., 3:, None])[..., 0]
    return q, t


def transform_points(points: Tensor, q: Tensor, t: Tensor) -> Tensor:
    """R(q) x + t for points `[N, 3]` with per-point (or shared) unit quaternions `[N|1, 4]` and translations `[N|1, 3]`."""
    R = quat_to_rotmat(q)  # [N|1, 3, 3]
    return (R @ points[..., None])[..., 0] + t


def points_in_box(points: Tensor, box_to_scene: Tensor, size: Tensor, margin: float = 1.0) -> tuple[Tensor, Tensor]:
    """Points `[N, 3]` (scene) inside the box of pose `[4, 4]` and size `[3]` (scaled by `margin`):
    (mask `[N]`, the points in the box frame `[N, 3]`)."""
    R, t = box_to_scene[:3, :3], box_to_scene[:3, 3]
    local = (points - t) @ R  # R^T (x - t)
    half = 0.5 * size * margin
    return (local.abs() <= half).all(dim=-1), local
