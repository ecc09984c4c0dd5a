"""Tiny scenes written on the fly (DriveStudio, nerfstudio, COLMAP bin/txt, LLFF) with their ground truth.

Each `write_*` returns a dict of what was written, in world coordinates and OpenCV camera axes,
so tests can compare what a reader gives back.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from faithfusion.data.drivestudio import (
    write_drivestudio_calib,
    write_drivestudio_frame,
    write_drivestudio_instances,
    waymo_extrinsic,
)

CAM_COLORS = {0: (200, 40, 40), 1: (40, 200, 40), 2: (40, 40, 200)}


# --- small geometry ----------------------------------------------------------------------------


def rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


def rot_y(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1.0, 0], [-np.sin(a), 0, np.cos(a)]])


def rigid(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV camera-to-world [4, 4] at `eye` looking at `target`."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    fwd = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    return rigid(np.stack([right, down, fwd], axis=1), eye)


def ring_cameras(n: int, radius: float = 4.0, center=(1.0, -2.0, 0.5)) -> list[np.ndarray]:
    """`n` OpenCV camera-to-world poses on a ring around `center`, looking at it."""
    c = np.asarray(center)
    poses = []
    for i in range(n):
        a = 2 * np.pi * i / n
        eye = c + np.array([radius * np.cos(a), radius * np.sin(a), 0.8 + 0.2 * i])
        poses.append(look_at(eye, c))
    return poses


def pattern_image(w: int, h: int, seed: int) -> np.ndarray:  # [h, w, 3] uint8
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), np.full_like(xx, 128)], -1)
    return np.clip(base + rng.integers(-20, 20, size=base.shape), 0, 255).astype(np.uint8)


# --- DriveStudio -------------------------------------------------------------------------------


def _ds_camera(cam: int) -> tuple[np.ndarray, np.ndarray]:
    """(intrinsics [9], OpenCV camera-to-vehicle [4, 4]) of camera `cam`: yaw 0 / +80 / -80 deg."""
    yaw = {0: 0.0, 1: 80.0, 2: -80.0, 3: 100.0, 4: -100.0}[cam]
    side = {0: 0.0, 1: 0.3, 2: -0.3, 3: 0.5, 4: -0.5}[cam]
    R_waymo = rot_z(yaw) @ rot_y(8.0)  # Waymo camera axes (x forward, y left, z up), pitched down
    ext_waymo = rigid(R_waymo, [1.5, side, 1.8])
    from faithfusion.data.drivestudio import opencv_cam_to_ego

    dist = [0.0] * 5 if cam != 2 else [-0.03, 0.005, 0.001, -0.0005, 0.0]
    intr = np.array([40.0, 41.0, 32.0, 24.0, *dist])
    return intr, opencv_cam_to_ego(ext_waymo)


def _ds_lidar(cams, intr, c2e, size) -> tuple[np.ndarray, np.ndarray]:
    """Lidar hits (vehicle frame) of a ground plane z=0 and a wall x=14, made by casting each
    camera's pixel grid; plus hidden points behind the car. Returns [M, 14] and [M, 3] (cam, u, v)."""
    W, H = size
    origin = np.array([1.0, 0.0, 2.0])
    rows, pix = [], []
    for cam in cams:
        fx, fy, cx, cy = intr[cam][:4]
        v, u = np.mgrid[2:H:6, 3:W:6].astype(np.float64)
        u, v = u.ravel() + 0.5, v.ravel() + 0.5
        d_cam = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], 1)  # [P, 3]
        d = d_cam @ c2e[cam][:3, :3].T
        o = c2e[cam][:3, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            s_ground = np.where(d[:, 2] < -1e-6, -o[2] / d[:, 2], np.inf)
            s_wall = np.where(d[:, 0] > 1e-6, (14.0 - o[0]) / d[:, 0], np.inf)
        s = np.minimum(s_ground, s_wall)
        ok = np.isfinite(s) & (s < 60)
        pts = o + s[ok, None] * d[ok]
        rows.append(pts)
        pix.append(np.stack([np.full(ok.sum(), cam), u[ok], v[ok]], 1))
    hidden = np.stack([np.linspace(-8, -4, 10), np.linspace(-1, 1, 10), np.zeros(10)], 1)  # behind the car
    rows.append(hidden)
    pix.append(np.full((10, 3), -1.0))
    pts = np.concatenate(rows)
    lidar = np.zeros((len(pts), 14), dtype=np.float32)
    lidar[:, 0:3] = origin
    lidar[:, 3:6] = pts
    lidar[:, 10] = np.abs(pts[:, 2]) < 1e-6  # ground label
    lidar[:, 11] = 0.5
    return lidar, np.concatenate(pix)


def write_drivestudio_scene(root: Path, n_steps: int = 6, cams=(0, 1, 2), size=(64, 48)) -> dict:
    """A DriveStudio scene: 3 cameras, `n_steps` timesteps, uniform images per camera, lidar on a
    plane and a wall, sky masks, dynamic masks and one instance."""
    root = Path(root)
    W, H = size
    intr, c2e = {}, {}
    for cam in cams:
        intr[cam], c2e[cam] = _ds_camera(cam)
    write_drivestudio_calib(root, intr, {c: waymo_extrinsic(c2e[c]) for c in cams})
    lidar, pix = _ds_lidar(cams, intr, c2e, size)
    ego = {}
    for t in range(n_steps):
        yaw = 30.0 + 2.0 * t
        pos = np.array([1000.0, 2000.0, 50.0]) + 2.0 * t * np.array([np.cos(np.radians(30)), np.sin(np.radians(30)), 0.0])
        ego[t] = rigid(rot_z(yaw), pos)
        images = {c: np.broadcast_to(np.array(CAM_COLORS.get(c, (128, 128, 128)), np.uint8), (H, W, 3)).copy() for c in cams}
        sky = {c: np.arange(H)[:, None].repeat(W, 1) < H // 4 for c in cams}
        dyn = np.zeros((H, W), bool)
        dyn[20:30, 10:20] = True
        write_drivestudio_frame(root, t, ego[t], images, lidar, sky_masks=sky, dynamic_masks={"all": {c: dyn for c in cams}})
    o2w = [rigid(rot_z(30.0), ego[t][:3, 3] + [5.0, 1.0, 0.8]) for t in range(n_steps)]
    write_drivestudio_instances(
        root,
        {"0": {"id": "abc", "class_name": "Vehicle", "frame_annotations": {"frame_idx": list(range(n_steps)), "obj_to_world": [T.tolist() for T in o2w], "box_size": [[4.0, 2.0, 1.6]] * n_steps}}},
        {str(t): [0] for t in range(n_steps)},
    )
    return {"root": root, "intrinsics": intr, "cam_to_ego": c2e, "ego": ego, "lidar": lidar, "pixels": pix, "size": size, "cams": tuple(cams), "obj_to_world": o2w}


# --- nerfstudio --------------------------------------------------------------------------------


def write_nerfstudio_scene(root: Path, n: int = 6, size=(48, 36)) -> dict:
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    W, H = size
    c2ws = ring_cameras(n)
    frames = []
    for i, c2w in enumerate(c2ws):
        name = f"images/frame_{i:03d}.png"
        Image.fromarray(pattern_image(W, H, i)).save(root / name)
        fr = {"file_path": name, "transform_matrix": (c2w @ np.diag([1.0, -1.0, -1.0, 1.0])).tolist()}  # OpenGL
        if i == 2:
            fr.update({"fl_x": 50.0, "fl_y": 52.0, "cx": 23.0, "cy": 17.5, "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0})
        frames.append(fr)
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(200, 3)) + [1.0, -2.0, 0.5]
    rgb = rng.integers(0, 256, size=(200, 3)).astype(np.uint8)
    write_ply(root / "points.ply", pts, rgb)
    meta = {"camera_model": "OPENCV", "fl_x": 45.0, "fl_y": 46.0, "cx": 24.5, "cy": 18.0, "w": W, "h": H,
            "k1": 0.01, "k2": -0.002, "p1": 0.0005, "p2": -0.0003, "frames": frames[::-1], "ply_file_path": "points.ply"}  # fmt: skip
    (root / "transforms.json").write_text(json.dumps(meta, indent=1))
    return {"root": root, "c2w": c2ws, "meta": meta, "points": pts, "rgb": rgb}


def write_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    from plyfile import PlyData, PlyElement

    v = np.zeros(len(xyz), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    v["x"], v["y"], v["z"] = xyz.T
    v["red"], v["green"], v["blue"] = rgb.T
    PlyData([PlyElement.describe(v, "vertex")]).write(str(path))


# --- COLMAP ------------------------------------------------------------------------------------

COLMAP_CAMERAS = {  # id: (model name, model id, params) for a 40x30 image
    1: ("SIMPLE_PINHOLE", 0, [35.0, 20.0, 15.0]),
    2: ("PINHOLE", 1, [36.0, 37.0, 19.5, 15.5]),
    3: ("SIMPLE_RADIAL", 2, [34.0, 20.0, 15.0, 0.02]),
    4: ("RADIAL", 3, [33.0, 20.0, 15.0, 0.02, -0.01]),
    5: ("OPENCV", 4, [35.0, 35.5, 20.5, 14.5, 0.03, -0.01, 0.001, -0.002]),
}


def rotmat_to_qvec(R: np.ndarray) -> np.ndarray:  # (w, x, y, z)
    from faithfusion.cameras import rotmat_to_quat
    import torch

    return rotmat_to_quat(torch.from_numpy(R)).numpy()


def write_colmap_scene(root: Path, binary: bool = True, n: int = 6, size=(40, 30)) -> dict:
    """COLMAP scene: root/images/*.png and root/sparse/0/{cameras,images,points3D}.{bin|txt}."""
    root = Path(root)
    model = root / "sparse" / "0"
    model.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    W, H = size
    c2ws = ring_cameras(n)
    images = []  # (id, qvec, tvec, camera_id, name)
    for i, c2w in enumerate(c2ws):
        name = f"img_{i:02d}.png"
        Image.fromarray(pattern_image(W, H, i)).save(root / "images" / name)
        w2c = np.linalg.inv(c2w)
        images.append((i + 1, rotmat_to_qvec(w2c[:3, :3]), w2c[:3, 3], 1 + i % 5, name))
    rng = np.random.default_rng(1)
    xyz = rng.normal(size=(50, 3)) + [1.0, -2.0, 0.5]
    rgb = rng.integers(0, 256, size=(50, 3))
    if binary:
        _write_colmap_bin(model, images, xyz, rgb, W, H)
    else:
        _write_colmap_txt(model, images, xyz, rgb, W, H)
    return {"root": root, "model": model, "c2w": c2ws, "images": images, "points": xyz, "rgb": rgb, "size": size}


def _write_colmap_bin(model: Path, images, xyz, rgb, W: int, H: int) -> None:
    with open(model / "cameras.bin", "wb") as f:
        f.write(struct.pack("<Q", len(COLMAP_CAMERAS)))
        for cid, (_, mid, params) in COLMAP_CAMERAS.items():
            f.write(struct.pack("<iiQQ", cid, mid, W, H))
            f.write(struct.pack(f"<{len(params)}d", *params))
    with open(model / "images.bin", "wb") as f:
        f.write(struct.pack("<Q", len(images)))
        for iid, q, t, cid, name in images:
            f.write(struct.pack("<i4d3di", iid, *q, *t, cid))
            f.write(name.encode() + b"\x00")
            f.write(struct.pack("<Q", 2))
            f.write(struct.pack("<ddqddq", 1.0, 2.0, 0, 3.0, 4.0, -1))
    with open(model / "points3D.bin", "wb") as f:
        f.write(struct.pack("<Q", len(xyz)))
        for pid, (p, c) in enumerate(zip(xyz, rgb)):
            f.write(struct.pack("<Q3d3Bd", pid, *p, *[int(x) for x in c], 0.5))
            f.write(struct.pack("<Q", 2))
            f.write(struct.pack("<iiii", 1, 0, 2, 0))


def _write_colmap_txt(model: Path, images, xyz, rgb, W: int, H: int) -> None:
    lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    lines += [f"{cid} {name} {W} {H} " + " ".join(repr(p) for p in params) for cid, (name, _, params) in COLMAP_CAMERAS.items()]
    (model / "cameras.txt").write_text("\n".join(lines) + "\n")
    lines = ["# Image list with two lines of data per image:"]
    for k, (iid, q, t, cid, name) in enumerate(images):
        lines.append(f"{iid} " + " ".join(repr(float(x)) for x in (*q, *t)) + f" {cid} {name}")
        lines.append("" if k % 2 else "1.0 2.0 0 3.0 4.0 -1")  # an empty POINTS2D line must be fine
    (model / "images.txt").write_text("\n".join(lines) + "\n")
    lines = ["# 3D point list"]
    lines += [f"{pid} {p[0]!r} {p[1]!r} {p[2]!r} {c[0]} {c[1]} {c[2]} 0.5 1 0 2 0" for pid, (p, c) in enumerate(zip(xyz.tolist(), rgb.tolist()))]
    (model / "points3D.txt").write_text("\n".join(lines) + "\n")


# --- LLFF --------------------------------------------------------------------------------------


def write_llff_scene(root: Path, n: int = 5, size=(80, 60), focal: float = 70.0) -> dict:
    """poses_bounds.npy with [down, right, back] poses; images/ at full size, images_2/ at half."""
    root = Path(root)
    W, H = size
    c2ws = ring_cameras(n)
    rows = []
    for i, c2w in enumerate(c2ws):
        right, down, fwd, c = c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3]
        pose = np.stack([down, right, -fwd, c, [H, W, focal]], axis=1)  # [3, 5]
        rows.append(np.concatenate([pose.ravel(), [1.0 + i, 10.0 + i]]))
        for d, s in (("images", 1), ("images_2", 2)):
            (root / d).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pattern_image(W // s, H // s, i)).save(root / d / f"IMG_{i:04d}.png")
    np.save(root / "poses_bounds.npy", np.stack(rows))
    return {"root": root, "c2w": c2ws, "size": size, "focal": focal, "bounds": np.stack(rows)[:, 15:]}


def names_path(path) -> str:
    """A regular expression that matches `path` literally (error messages start with the file's path)."""
    import re

    return re.escape(str(path))
