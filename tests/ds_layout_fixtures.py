"""Tiny scenes in each DriveStudio dataset layout, written from one ground truth in world coordinates.

The ground truth is a vehicle (x forward, y left, z up) far from the world origin, OpenCV cameras
on it, and world points. Each layout stores them its own way (DriveStudio's preprocess scripts):
pose file and its frame, camera axes of the extrinsics, per-camera or per-frame extrinsics, lidar
columns. A reader that gets any convention wrong moves the known points off their known pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.scene_fixtures import rigid, rot_y, rot_z

# Written independently of faithfusion.data.ds_layouts (the code under test), from DriveStudio's
# preprocess scripts: pose folder, per-frame extrinsics, Waymo camera axes, lidar columns, cameras.
FACTS = {
    "waymo": ("ego_pose", False, True, ("ox", "oy", "oz", "x", "y", "z", *["f"] * 8), 5),
    "nuscenes": ("lidar_pose", True, False, ("x", "y", "z", "intensity"), 6),
    "pandaset": ("ego_pose", True, False, ("x", "y", "z", "intensity", "laser_id"), 6),
    "kitti": ("ego_pose", False, False, ("x", "y", "z", "reflectance"), 2),
    "argoverse": ("ego_pose", False, False, ("x", "y", "z", "intensity"), 7),
    "nuplan": ("ego_pose", False, False, ("x", "y", "z", "intensity", "ring", "lidar_id"), 8),
}
# OpenCV camera axes (x right, y down, z forward) -> Waymo camera axes (x forward, y left, z up)
OPENCV_TO_WAYMO_CAM = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])

SIZE = (64, 48)  # W, H
K = (40.0, 41.0, 32.0, 24.0)  # fx fy cx cy
YAW = (0.0, 80.0, -80.0, 100.0, -100.0, 150.0, -150.0, 180.0)  # camera id -> yaw on the vehicle
KNOWN_PIXEL = {0: (20.5, 30.5), 1: (45.25, 12.75)}  # camera id -> pixel of its known point
KNOWN_DEPTH = 20.0  # metres along the camera's z

# sensor-to-vehicle of the pose file: PandaSet's and nuScenes' lidars have x right, y forward, z up
MOUNT = {
    "pandaset": rigid(rot_z(90.0), [0.0, 0.0, 1.8]),
    "nuscenes": rigid(rot_z(90.0), [0.9, 0.0, 1.8]),
}


def cam_to_vehicle(cam: int) -> np.ndarray:  # [4, 4] OpenCV camera-to-vehicle
    """Camera `cam` on the roof, yawed by YAW[cam], pitched 5 degrees down."""
    R_waymo = rot_z(YAW[cam]) @ rot_y(5.0)  # Waymo camera axes (x forward, y left, z up)
    return rigid(R_waymo, [1.5, 0.2 * np.sin(np.radians(YAW[cam])), 1.7]) @ OPENCV_TO_WAYMO_CAM


def vehicle_pose(t: int) -> np.ndarray:  # [4, 4] vehicle-to-world
    return rigid(rot_z(30.0 + 3.0 * t), [1200.0 + 1.7 * t, -800.0 + 1.0 * t, 40.0])


def known_point(t: int, cam: int) -> np.ndarray:  # [3] world point seen at KNOWN_PIXEL[cam]
    u, v = KNOWN_PIXEL[cam]
    fx, fy, cx, cy = K
    x_cam = np.array([(u - cx) / fx * KNOWN_DEPTH, (v - cy) / fy * KNOWN_DEPTH, KNOWN_DEPTH, 1.0])
    return (vehicle_pose(t) @ cam_to_vehicle(cam) @ x_cam)[:3]


def lidar_points(t: int) -> np.ndarray:  # [N, 3] world points of the sweep at t
    rng = np.random.default_rng(t)
    ground = np.concatenate([rng.uniform(2, 30, (20, 1)), rng.uniform(-8, 8, (20, 1)), np.full((20, 1), 0.013)], 1)
    ground = ground @ vehicle_pose(t)[:3, :3].T + vehicle_pose(t)[:3, 3]
    return np.concatenate([ground, np.stack([known_point(t, 0), known_point(t, 1)])])


def _save(path: Path, M) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.asarray(M, dtype=np.float64))


def _lidar_rows(name: str, pts_sensor: np.ndarray, origin: np.ndarray) -> np.ndarray:  # [N, C] float32
    n = len(pts_sensor)
    cols = FACTS[name][3]
    out = np.zeros((n, len(cols)), dtype=np.float32)
    x = cols.index("x")
    out[:, x : x + 3] = pts_sensor
    if name == "waymo":
        out[:, 0:3] = origin
    for col, value in (("intensity", 0.37), ("reflectance", 0.37), ("ring", 3.0), ("laser_id", 0.0), ("lidar_id", 1.0)):
        if col in cols:
            out[:, cols.index(col)] = value
    if "ring" in cols:
        out[:, cols.index("ring")] = np.arange(n) % 32
    return out


def write_layout_scene(root: Path, name: str, n_steps: int = 2, cams=(0, 1), fine_masks: bool = False) -> dict:
    """Write a scene in DriveStudio layout `name`; return its ground truth."""
    pose_dir, per_frame, waymo_axes, _, n_cams = FACTS[name]
    root = Path(root)
    W, H = SIZE
    mount = MOUNT.get(name, np.eye(4))
    all_cams = range(n_cams)  # DriveStudio writes every camera's calibration
    for cam in all_cams:
        _save(root / "intrinsics" / f"{cam}.txt", [*K, 0.0, 0.0, 0.0, 0.0, 0.0])
        if not per_frame:
            C = cam_to_vehicle(cam)
            _save(root / "extrinsics" / f"{cam}.txt", C @ OPENCV_TO_WAYMO_CAM.T if waymo_axes else C)
    for t in range(n_steps):
        V = vehicle_pose(t)
        S = V @ mount  # the pose file's sensor-to-world
        _save(root / pose_dir / f"{t:03d}.txt", S)
        if per_frame:
            for cam in all_cams:
                _save(root / "extrinsics" / f"{t:03d}_{cam}.txt", V @ cam_to_vehicle(cam))
        world = lidar_points(t)
        Sinv = np.linalg.inv(S)
        rows = _lidar_rows(name, world @ Sinv[:3, :3].T + Sinv[:3, 3], mount[:3, 3])
        (root / "lidar").mkdir(parents=True, exist_ok=True)
        rows.tofile(root / "lidar" / f"{t:03d}.bin")
        for cam in cams:
            (root / "images").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", SIZE, (40 + 60 * cam, 90, 140)).save(root / "images" / f"{t:03d}_{cam}.jpg")
            sky = np.zeros((H, W), np.uint8)
            sky[: H // 4] = 255
            for folder, mask in (("sky_masks", sky),):
                (root / folder).mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(root / folder / f"{t:03d}_{cam}.png")
            mask_dirs = ("dynamic_masks", "fine_dynamic_masks") if fine_masks else ("dynamic_masks",)
            for folder in mask_dirs:
                for cls in ("all", "human", "vehicle"):
                    (root / folder / cls).mkdir(parents=True, exist_ok=True)
                    Image.fromarray(np.zeros((H, W), np.uint8)).save(root / folder / cls / f"{t:03d}_{cam}.png")
    return {"root": root, "layout": name, "steps": list(range(n_steps)), "cams": tuple(cams)}
