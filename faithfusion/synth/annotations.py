"""What are the labels of a view? 3D box corners, their projection, and 2D boxes from instance masks."""

from __future__ import annotations

import numpy as np
from numba import njit

_EDGES = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]


def box_corners(obj_to_world: np.ndarray, size) -> np.ndarray:  # [8, 3] world, index ix + 2 iy + 4 iz
    L, W, H = size
    c = np.array([[(i & 1) - 0.5, ((i >> 1) & 1) - 0.5, ((i >> 2) & 1) - 0.5] for i in range(8)]) * np.array([L, W, H])
    return c @ obj_to_world[:3, :3].T + obj_to_world[:3, 3]


def project_box(corners: np.ndarray, world_to_cam: np.ndarray, K: np.ndarray, width: int, height: int, near: float = 0.05):
    """[x0, y0, x1, y1] of the box's projection clipped to the image (pixel i spans [i, i + 1)), or None.

    The box is clipped at the near plane first (edges crossing it contribute their crossing points),
    so a box partly behind the camera still bounds everything of it that is seen."""
    c = corners @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]  # [8, 3] camera
    pts = [p for p in c if p[2] >= near]
    for a, b in _EDGES:
        za, zb = c[a, 2], c[b, 2]
        if (za >= near) != (zb >= near):
            s = (near - za) / (zb - za)
            pts.append(c[a] + s * (c[b] - c[a]))
    if not pts:
        return None
    p = np.array(pts)
    fx, fy, cx, cy = K
    u = fx * p[:, 0] / p[:, 2] + cx
    v = fy * p[:, 1] / p[:, 2] + cy
    x0, x1 = max(u.min(), 0.0), min(u.max(), float(width))
    y0, y1 = max(v.min(), 0.0), min(v.max(), float(height))
    if x0 >= x1 or y0 >= y1:
        return None
    return [float(x0), float(y0), float(x1), float(y1)]


@njit(cache=True)
def mask_boxes(inst, n_ids):  # [n_ids + 1, 5]: pixel count, x0, y0, x1, y1 (exclusive) per value
    out = np.zeros((n_ids + 1, 5), np.int64)
    out[:, 1] = inst.shape[1]
    out[:, 2] = inst.shape[0]
    for j in range(inst.shape[0]):
        for i in range(inst.shape[1]):
            k = inst[j, i]
            out[k, 0] += 1
            out[k, 1] = min(out[k, 1], i)
            out[k, 2] = min(out[k, 2], j)
            out[k, 3] = max(out[k, 3], i + 1)
            out[k, 4] = max(out[k, 4], j + 1)
    return out


def boxes_2d(inst: np.ndarray, poses: list[np.ndarray], sizes: list, track_ids: list[str], world_to_cam: np.ndarray, K: np.ndarray) -> list[dict]:
    """Labels of the instances seen in `inst [H, W]` (instance id + 1 per pixel)."""
    H, W = inst.shape
    stats = mask_boxes(np.ascontiguousarray(inst), len(poses))
    out = []
    for i in np.nonzero(stats[1:, 0])[0].tolist():
        n, x0, y0, x1, y1 = stats[i + 1].tolist()
        proj = project_box(box_corners(poses[i], sizes[i]), world_to_cam, K, W, H)
        out.append({
            "instance": i,
            "track_id": track_ids[i],
            "class_name": "Vehicle",
            "visible_pixels": n,
            "box_visible": [x0, y0, x1, y1],
            "box_projected": proj,
        })
    return out
