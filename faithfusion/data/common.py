"""Helpers shared by the readers: checked poses, text matrices, normalisation, PLY points.

Geometry is computed in float64 numpy (Waymo world coordinates reach 1e4 m) and only turned
into float32 tensors once it is in scene coordinates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from faithfusion.cameras import Camera, check_rigid
from faithfusion.data.scene import SceneError, SceneTransform

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def checked_pose(T: np.ndarray, source: str) -> np.ndarray:  # [4, 4] float64
    """Validate a pose with `check_rigid` (raises PoseError naming `source`); return it as float64 4x4."""
    T = np.asarray(T, dtype=np.float64)
    check_rigid(torch.from_numpy(T.copy()), source=source)
    if T.shape == (3, 4):
        T = np.concatenate([T, [[0.0, 0.0, 0.0, 1.0]]], axis=0)
    return T


def read_numbers(path: Path, what: str) -> np.ndarray:  # [K] float64
    """All whitespace-separated numbers of a text file; SceneError if missing or not numeric."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: {what} file is missing")
    try:
        values = [float(tok) for tok in path.read_text().split()]
    except ValueError as e:
        raise SceneError(f"{path}: {what} file is not a list of numbers ({e})") from e
    return np.asarray(values, dtype=np.float64)


def read_pose_txt(path: Path, what: str = "pose") -> np.ndarray:  # [4, 4] float64
    """A 4x4 (or 3x4) matrix in a text file, checked to be rigid."""
    values = read_numbers(path, what)
    if values.size not in (12, 16):
        raise SceneError(f"{path}: {what} file must hold a 4x4 matrix (16 numbers), got {values.size}")
    return checked_pose(values.reshape(-1, 4), source=str(path))


def invert_rigid_np(T: np.ndarray) -> np.ndarray:  # [4, 4]
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def pose_to_scene_np(c2w: np.ndarray, tf: SceneTransform, center: np.ndarray) -> np.ndarray:  # [4, 4]
    """A world camera-to-world pose into scene coordinates (rotation composed, translation scaled), in float64
    with the exact float64 `center`."""
    R = tf.rotation.double().numpy()
    out = np.eye(4)
    out[:3, :3] = R @ c2w[:3, :3]
    out[:3, 3] = tf.scale * R @ (c2w[:3, 3] - center)
    return out


def points_to_scene_np(x: np.ndarray, tf: SceneTransform, center: np.ndarray) -> np.ndarray:  # [N, 3]
    R = tf.rotation.double().numpy()
    return tf.scale * (x - center) @ R.T


def object_transform(centers: np.ndarray, radius: float = 1.0) -> tuple[SceneTransform, np.ndarray]:
    """Object-scene normalisation: centre on the camera centroid, scale so cameras fit `radius`.

    Returns the transform and the float64 centre (for exact float64 conversions).
    """
    center = centers.mean(axis=0)  # [3]
    extent = float(np.linalg.norm(centers - center, axis=1).max()) if len(centers) else 0.0
    scale = radius / extent if extent > 1e-9 else 1.0
    tf = SceneTransform(torch.from_numpy(center).float(), torch.eye(3), float(scale))
    return tf, center


def make_camera(K: np.ndarray, c2w: np.ndarray, width: int, height: int, name: str, **meta) -> Camera:
    """A Camera from float64 K [3,3] and OpenCV camera-to-scene [4,4]."""
    viewmat = invert_rigid_np(c2w)
    return Camera(
        K=torch.from_numpy(K).float(),
        viewmat=torch.from_numpy(viewmat).float(),
        width=int(width),
        height=int(height),
        name=name,
        meta=dict(meta),
    )


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:  # [3, 3]
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def distortion_tensor(k1=0.0, k2=0.0, p1=0.0, p2=0.0, k3=0.0) -> Tensor | None:  # [5] or None
    """OpenCV [k1, k2, p1, p2, k3], or None when all are zero (a pinhole image)."""
    d = torch.tensor([k1, k2, p1, p2, k3], dtype=torch.float32)
    return d if bool(d.abs().sum() > 0) else None


def subsample(n: int, max_n: int | None, seed: int = 0) -> np.ndarray:  # [M] sorted indices
    """At most `max_n` of `n` indices, uniformly at random but reproducibly."""
    if max_n is None or n <= max_n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_n, replace=False))


def read_ply_points(path: Path) -> tuple[np.ndarray, np.ndarray | None]:  # [N, 3], [N, 3] in [0, 1]
    """Vertex positions (and red/green/blue colours if present) of a PLY file."""
    from plyfile import PlyData

    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: point file is missing")
    try:
        ply = PlyData.read(str(path))
        v = ply["vertex"]
        xyz = np.stack([np.asarray(v["x"]), np.asarray(v["y"]), np.asarray(v["z"])], axis=1).astype(np.float64)
    except Exception as e:  # plyfile raises many types on bad input
        raise SceneError(f"{path}: cannot read PLY vertices ({type(e).__name__}: {e})") from e
    if xyz.shape[0] == 0:
        raise SceneError(f"{path}: no points in the point file")
    names = v.data.dtype.names or ()
    rgb = None
    if all(c in names for c in ("red", "green", "blue")):
        rgb = np.stack([np.asarray(v[c]) for c in ("red", "green", "blue")], axis=1).astype(np.float64)
        rgb = rgb / (65535.0 if rgb.max() > 255 else 255.0)
    return xyz, rgb


def find_image(stem_path: Path) -> Path | None:
    """`stem_path` with the first image suffix that exists, or None."""
    for suffix in IMAGE_SUFFIXES:
        candidate = stem_path.with_name(stem_path.name + suffix)
        if candidate.is_file():
            return candidate
    return None
