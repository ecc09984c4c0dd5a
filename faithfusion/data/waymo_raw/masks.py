"""Dynamic-object masks from the 3D labels, as DriveStudio's `save_dynamic_mask` makes them.

Each labelled box of a class in the mask's group, moving faster than 1 m/s and with lidar points in it,
is projected (its 8 corners) through Waymo's camera model with a global shutter: vehicle -> camera by the
inverse extrinsic, (u, v) = (-y / x, -z / x) in Waymo camera axes, the OpenCV-order distortion
(k1 k2 p1 p2 k3), a corner failing when behind the camera or when the radial distortion factor leaves
[0.8, 1.2] (Waymo's `camera_model.cc`). A box with any failed corner is skipped; the others fill their
corners' image-axis-aligned rectangle, clipped to the image.
"""

from __future__ import annotations

import numpy as np

from faithfusion.data.waymo_raw.proto import LABEL_TYPES

MASK_CLASSES = {"all": ("Vehicle", "Pedestrian", "Cyclist"), "human": ("Pedestrian", "Cyclist"), "vehicle": ("Vehicle",)}
SPEED_THRESHOLD = 1.0
"""m/s: a box slower than this is not dynamic."""


def box_corners(cx: float, cy: float, cz: float, length: float, width: float, height: float, heading: float) -> np.ndarray:  # [8, 3]
    """Corners of an upright box (vehicle frame)."""
    signs = np.array([[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)], dtype=np.float64)
    local = signs * [length / 2, width / 2, height / 2]
    c, s = np.cos(heading), np.sin(heading)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return local @ R.T + [cx, cy, cz]


def project_waymo(points: np.ndarray, intrinsic: np.ndarray, extrinsic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vehicle-frame points [N, 3] -> pixels [N, 2] and ok [N] with Waymo's global-shutter camera model."""
    T = np.linalg.inv(extrinsic)
    X = points @ T[:3, :3].T + T[:3, 3]  # [N, 3] Waymo camera axes: x forward, y left, z up
    front = X[:, 0] > 0
    x = np.where(front, X[:, 0], 1.0)
    u, v = -X[:, 1] / x, -X[:, 2] / x
    f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3 = intrinsic
    r2 = u * u + v * v
    radial = 1.0 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    ud = u * radial + 2.0 * p1 * u * v + p2 * (r2 + 2.0 * u * u)
    vd = v * radial + 2.0 * p2 * u * v + p1 * (r2 + 2.0 * v * v)
    ok = front & (radial >= 0.8) & (radial <= 1.2)
    return np.stack([f_u * ud + c_u, f_v * vd + c_v], axis=1), ok


def dynamic_mask(labels, intrinsic: np.ndarray, extrinsic: np.ndarray, width: int, height: int, group: str) -> np.ndarray:  # [H, W] bool
    """One camera's dynamic mask of one class group ('all', 'human', 'vehicle') from a Frame's laser labels."""
    speed_map = np.zeros((height, width), dtype=np.float64)
    use_top = any(label.num_top_lidar_points_in_box > 0 for label in labels)
    for label in labels:
        if LABEL_TYPES.get(label.type) not in MASK_CLASSES[group] or not label.HasField("box"):
            continue
        if (label.num_top_lidar_points_in_box if use_top else label.num_lidar_points_in_box) <= 0:
            continue  # likely occluded
        b = label.box
        uv, ok = project_waymo(box_corners(b.center_x, b.center_y, b.center_z, b.length, b.width, b.height, b.heading),
                               intrinsic, extrinsic)
        if not ok.all():
            continue
        u = np.clip(uv[:, 0], 0, width)
        v = np.clip(uv[:, 1], 0, height)
        if u.max() == u.min() or v.max() == v.min():
            continue
        rows, cols = slice(int(v.min()), int(v.max())), slice(int(u.min()), int(u.max()))
        speed = float(np.hypot(label.metadata.speed_x, label.metadata.speed_y))
        speed_map[rows, cols] = np.maximum(speed_map[rows, cols], speed)
    return speed_map > SPEED_THRESHOLD
