"""LLFF `poses_bounds.npy` scenes (as written by LLFF's imgs2poses.py, read by NeRF's load_llff.py).

Each row of the [N, 17] array is a 3x5 matrix (row-major, 15 numbers) and 2 depth bounds:
columns 0-2 are the camera-to-world rotation with camera axes [down, right, back], column 3 the
camera centre, column 4 = [height, width, focal] of the full-resolution image (principal point
at the centre, fx = fy). OpenCV axes [right, down, forward] = [col 1, col 0, -col 2].
Rows follow the sorted image file names of `images/` (or `images_{factor}`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from faithfusion.data.common import (
    IMAGE_SUFFIXES,
    checked_pose,
    intrinsics_matrix,
    make_camera,
    object_transform,
    pose_to_scene_np,
)
from faithfusion.data.images import image_size
from faithfusion.data.scene import Frame, SceneData, SceneError, holdout_split


def llff_to_opencv(pose_3x5: np.ndarray) -> np.ndarray:  # [3, 5] -> [4, 4] camera-to-world
    down, right, back, center = pose_3x5[:, 0], pose_3x5[:, 1], pose_3x5[:, 2], pose_3x5[:, 3]
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, -back, center
    return c2w


def read_llff(
    path: str | Path,
    holdout_every: int = 8,
    factor: int | None = None,
    radius: float = 1.0,
) -> SceneData:
    """Read an LLFF scene folder (poses_bounds.npy + images/) into SceneData (no points).

    The depth bounds are kept in `extra["bounds"]` [N, 2], in scene units.
    """
    root = Path(path)
    pb_path = root / "poses_bounds.npy"
    if not pb_path.is_file():
        raise SceneError(f"{pb_path}: poses_bounds.npy is missing")
    try:
        arr = np.load(pb_path).astype(np.float64)
    except (OSError, ValueError) as e:
        raise SceneError(f"{pb_path}: cannot read ({e})") from e
    if arr.ndim != 2 or arr.shape[1] != 17 or arr.shape[0] == 0:
        raise SceneError(f"{pb_path}: expected an [N, 17] array, got shape {arr.shape}")
    poses, bounds = arr[:, :15].reshape(-1, 3, 5), arr[:, 15:]  # [N, 3, 5], [N, 2]

    image_dir = root / (f"images_{factor}" if factor else "images")
    if not image_dir.is_dir():
        raise SceneError(f"{image_dir}: image folder is missing")
    files = sorted(p for p in image_dir.iterdir() if p.suffix in IMAGE_SUFFIXES)
    if len(files) != len(poses):
        raise SceneError(f"{pb_path}: {len(poses)} poses but {len(files)} images in {image_dir}")

    c2ws = [checked_pose(llff_to_opencv(p), source=f"{pb_path} (row {i}, {files[i].name})") for i, p in enumerate(poses)]
    tf, center = object_transform(np.stack([c[:3, 3] for c in c2ws]), radius)

    frames = []
    sizes: dict[tuple[float, float], tuple[int, int]] = {}
    for i, (f, c2w) in enumerate(zip(files, c2ws)):
        H, W, focal = poses[i, :, 4]
        if not np.isfinite([H, W, focal]).all() or min(H, W, focal) <= 0:
            raise SceneError(f"{pb_path}: row {i} has an invalid [height, width, focal] column {[H, W, focal]}")
        if (H, W) not in sizes:
            sizes[(H, W)] = image_size(f)
        w, h = sizes[(H, W)]
        s = w / W  # images may be a downscaled copy of the full resolution of hwf
        if abs(h - H * s) > 1.0:
            raise SceneError(f"{f}: wrong image size {w}x{h}, poses_bounds.npy gives {W:.0f}x{H:.0f} (another aspect ratio)")
        K = intrinsics_matrix(focal * s, focal * s, w / 2, h / 2)
        cam = make_camera(K, pose_to_scene_np(c2w, tf, center), w, h, name=f.stem)
        frames.append(Frame(image_path=f, camera=cam, timestep=i, cam_name=f.stem))

    train_ids, test_ids = holdout_split(len(frames), holdout_every)
    return SceneData(
        frames=frames,
        points=torch.zeros(0, 3),
        point_colors=None,
        transform=tf,
        train_ids=train_ids,
        test_ids=test_ids,
        source=str(root),
        kind="generic",
        extra={"format": "llff", "bounds": torch.from_numpy(bounds * tf.scale).float()},
    )
