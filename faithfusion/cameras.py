"""Cameras in the OpenCV convention (x right, y down, z forward), lane shifts and pose interpolation.

A `Camera` holds a 3x3 intrinsic matrix `K`, a 4x4 world-to-camera `viewmat` (gsplat's layout)
and the image size. Poses coming from disk are checked with `check_rigid` so that a NaN or a
sheared matrix is reported with the file it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from faithfusion.errors import UserError


class PoseError(UserError, ValueError):
    """A pose matrix that is not a finite rigid transform."""


@dataclass
class Camera:
    """One pinhole camera: intrinsics, world-to-camera pose and image size (pixels)."""

    K: Tensor  # [3, 3]
    viewmat: Tensor  # [4, 4] world-to-camera, OpenCV axes
    width: int
    height: int
    name: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def camtoworld(self) -> Tensor:  # [4, 4]
        return invert_rigid(self.viewmat)

    @property
    def center(self) -> Tensor:  # [3]
        return self.camtoworld[:3, 3]

    def scaled(self, factor: float) -> "Camera":
        """The same camera at `factor` times the resolution (K scaled, pose unchanged)."""
        K = self.K.clone()
        K[:2] *= factor
        width, height = round(self.width * factor), round(self.height * factor)
        return replace(self, K=K, width=width, height=height)

    def with_camtoworld(self, c2w: Tensor) -> "Camera":
        return replace(self, viewmat=invert_rigid(c2w))

    def to(self, device: torch.device | str) -> "Camera":
        return replace(self, K=self.K.to(device), viewmat=self.viewmat.to(device))


def invert_rigid(T: Tensor) -> Tensor:
    """Inverse of rigid transforms `[..., 4, 4]` without a general matrix inverse."""
    R, t = T[..., :3, :3], T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    top = torch.cat([Rt, -Rt @ t], dim=-1)  # [..., 3, 4]
    # a rigid transform and its inverse share the last row [0, 0, 0, 1]: taken from T, no Python scalar is written
    # into a (CUDA) tensor, which would sync the host
    return torch.cat([top, T[..., 3:, :]], dim=-2)


def check_rigid(T: Tensor, source: str, tol: float = 1e-3) -> Tensor:
    """Return `T` as float32 [4,4] if it is a finite rigid transform, else raise PoseError naming `source`.

    Poses may carry a uniform scale in some tools; here a camera or ego pose must be a rotation
    (orthonormal, det +1) plus a translation with last row [0, 0, 0, 1].
    """
    T = torch.as_tensor(T, dtype=torch.float64)
    if T.shape == (3, 4):
        T = torch.cat([T, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=T.dtype)])
    if T.shape != (4, 4):
        raise PoseError(f"{source}: pose must be 4x4 (or 3x4), got shape {tuple(T.shape)}")
    if not torch.isfinite(T).all():
        raise PoseError(f"{source}: pose contains NaN or infinite values")
    if not torch.allclose(T[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=T.dtype), atol=tol):
        raise PoseError(f"{source}: last row of the pose must be [0 0 0 1], got {T[3].tolist()}")
    R = T[:3, :3]
    err = (R @ R.T - torch.eye(3, dtype=T.dtype)).abs().max().item()
    if err > tol:
        raise PoseError(f"{source}: pose is not rigid: rotation is not orthonormal (|R R^T - I| = {err:.3g})")
    det = torch.linalg.det(R).item()
    if det < 0:
        raise PoseError(f"{source}: pose is not rigid: rotation has determinant {det:.3f} (a reflection)")
    return T.float()


# --- lane shift --------------------------------------------------------------------------------


def lane_shift_ego(ego_to_world: Tensor, metres: float) -> Tensor:
    """Move an ego pose `metres` along its own left axis (+y in the Waymo vehicle frame: x forward,
    y left, z up). Positive is left. Returns a new [4,4] vehicle-to-world matrix."""
    out = ego_to_world.clone()
    out[:3, 3] = ego_to_world[:3, 3] + metres * ego_to_world[:3, 1]
    return out


def lane_shift_camera(camera: Camera, ego_to_world: Tensor, metres: float) -> Camera:
    """The camera rigidly attached to an ego that moved `metres` to its left (world units)."""
    cam_to_ego = invert_rigid(ego_to_world) @ camera.camtoworld
    shifted = lane_shift_ego(ego_to_world, metres) @ cam_to_ego
    return camera.with_camtoworld(shifted)


# --- rotations ---------------------------------------------------------------------------------


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a ⊗ b of wxyz quaternions `[..., 4]` (the rotation b first, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def quat_to_rotmat(q: Tensor) -> Tensor:
    """wxyz quaternions `[..., 4]` (need not be unit) to rotation matrices `[..., 3, 3]`."""
    return rotmat_formula(q / q.norm(dim=-1, keepdim=True))


def rotmat_formula(q: Tensor) -> Tensor:
    """The quaternion rotation formula for wxyz `[..., 4]` taken as given (no normalisation) -> `[..., 3, 3]`."""
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def rotmat_to_quat(R: Tensor) -> Tensor:
    """Rotation matrices `[..., 3, 3]` to unit wxyz quaternions `[..., 4]` with w >= 0."""
    m = R.reshape(-1, 3, 3)
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    candidates = torch.stack(
        [
            torch.stack([1 + trace, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
            torch.stack([m[:, 2, 1] - m[:, 1, 2], 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0]], -1),
            torch.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2], m[:, 1, 2] + m[:, 2, 1]], -1),
            torch.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1], 1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], -1),
        ],
        dim=1,
    )  # [B, 4, 4]: row k is 4*q*q_k for the k-th largest-diagonal choice
    diag = torch.stack([trace, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], -1)
    best = diag.argmax(-1)
    q = candidates[torch.arange(m.shape[0]), best]
    q = q / q.norm(dim=-1, keepdim=True)
    q = torch.where(q[:, :1] < 0, -q, q)
    return q.reshape(*R.shape[:-2], 4)


def slerp(q0: Tensor, q1: Tensor, t: float) -> Tensor:
    """Spherical linear interpolation between unit wxyz quaternions `[4]`, shortest arc."""
    q0 = q0 / q0.norm()
    q1 = q1 / q1.norm()
    dot = torch.dot(q0, q1)
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + t * (q1 - q0)
        return q / q.norm()
    theta = torch.arccos(dot.clamp(-1.0, 1.0))
    s = torch.sin(theta)
    return (torch.sin((1 - t) * theta) / s) * q0 + (torch.sin(t * theta) / s) * q1


def interpolate_pose(T0: Tensor, T1: Tensor, t: float) -> Tensor:
    """Pose between two rigid [4,4] transforms: SLERP on rotation, linear on translation."""
    q = slerp(rotmat_to_quat(T0[:3, :3]), rotmat_to_quat(T1[:3, :3]), t)
    out = torch.eye(4, dtype=T0.dtype, device=T0.device)
    out[:3, :3] = quat_to_rotmat(q)
    out[:3, 3] = (1 - t) * T0[:3, 3] + t * T1[:3, 3]
    return out


def look_at(eye: Tensor, target: Tensor, up: Tensor) -> Tensor:
    """OpenCV camera-to-world [4,4] at `eye` looking at `target`, with `up` roughly the image's -y."""
    forward = target - eye
    forward = forward / forward.norm()
    right = torch.linalg.cross(forward, up)
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    c2w = torch.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w
