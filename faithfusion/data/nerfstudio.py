"""nerfstudio / instant-ngp `transforms.json` scenes.

- `transform_matrix` is camera-to-world with OpenGL camera axes (x right, y up, z back); the
  OpenCV camera-to-world is `c2w @ diag(1, -1, -1, 1)` (flip the camera's y and z axes).
- Intrinsics `fl_x fl_y cx cy w h` and OPENCV distortion `k1 k2 p1 p2` (`k3` if present) are
  global or per frame (a frame's keys win). instant-ngp files without `fl_x` give
  `camera_angle_x` (and maybe `camera_angle_y`); `cx, cy` default to the image centre.
- `ply_file_path` (nerfstudio's key; `ply_file` accepted) names SfM points. As in nerfstudio's dataparser,
  `applied_transform` (3x4 or 4x4, written by ns-process-data) maps the PLY's frame to the poses' frame and
  `applied_scale` then scales the points: x_poses = applied_scale * (A @ [x; 1]).
- `mask_path` per frame (every frame or none): pixels where the mask is 0 get no photometric loss.
- `depth_file_path` per frame (every frame or none): 16-bit PNG or .npy z-depth; value x
  `depth_unit_scale_factor` (top-level key, nerfstudio's default 1e-3: millimetres) = world units; the
  trainer's dense depth term (weight --depth-lambda) uses it.
- `OPENCV_FISHEYE` and `EQUIRECTANGULAR` are refused with the reason (see FISHEYE_REASON).
- Frames are sorted by file path (as nerfstudio does) before the holdout split.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from faithfusion.data.common import (
    checked_pose,
    distortion_tensor,
    find_image,
    intrinsics_matrix,
    make_camera,
    object_transform,
    points_to_scene_np,
    pose_to_scene_np,
    read_ply_points,
    subsample,
)
from faithfusion.data.images import image_size
from faithfusion.data.scene import Frame, SceneData, SceneError, holdout_split

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # right-multiply a camera-to-world
SUPPORTED_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE")
DEFAULT_DEPTH_UNIT_SCALE = 1e-3  # nerfstudio's default: depth files in millimetres
FISHEYE_REASON = (
    "the rasteriser projects Gaussians with a pinhole camera, and remapping a fisheye image onto a pinhole camera "
    "with its intrinsics would throw away the wide field of view that makes it a fisheye (and stretch its rim); "
    "undistort the images to a pinhole camera first (COLMAP's image_undistorter, or ns-process-data "
    "--camera-type perspective) and give camera_model PINHOLE"
)


def _resolve_image(base: Path, file_path: str, json_path: Path) -> Path:
    p = base / file_path
    if p.is_file():
        return p
    if not p.suffix:  # Blender-style paths without an extension
        found = find_image(p)
        if found is not None:
            return found
    raise SceneError(f"{p}: image file is missing (listed in {json_path})")


def _intrinsics(params: dict, image_path: Path, json_path: Path) -> tuple[np.ndarray, int, int, torch.Tensor | None]:
    """K [3, 3], width, height and distortion of one frame from its merged parameters."""
    model = params.get("camera_model", "OPENCV")
    if model in ("OPENCV_FISHEYE", "EQUIRECTANGULAR"):
        raise SceneError(f"{json_path}: camera_model {model} is not supported: {FISHEYE_REASON}")
    if model not in SUPPORTED_MODELS:
        raise SceneError(f"{json_path}: camera_model {model!r} is not supported (only {', '.join(SUPPORTED_MODELS)})")
    def number(key: str, default: float | None = None) -> float:
        value = params.get(key, default)
        try:
            if isinstance(value, bool):
                raise ValueError("a boolean")
            return float(value)  # a number, or a string holding one
        except (TypeError, ValueError):
            raise SceneError(f"{json_path}: {key} of {image_path.name} must be a number, got {value!r}") from None

    if "w" in params and "h" in params:
        width, height = int(round(number("w"))), int(round(number("h")))
        if width <= 0 or height <= 0:
            raise SceneError(f"{json_path}: image size of {image_path.name} must be positive, got {width}x{height}")
    else:
        width, height = image_size(image_path)
    if "fl_x" in params:
        fx = number("fl_x")
    elif "camera_angle_x" in params:
        fx = 0.5 * width / math.tan(0.5 * number("camera_angle_x"))
    else:
        raise SceneError(f"{json_path}: no focal length (fl_x or camera_angle_x) for {image_path.name}")
    if "fl_y" in params:
        fy = number("fl_y")
    elif "camera_angle_y" in params:
        fy = 0.5 * height / math.tan(0.5 * number("camera_angle_y"))
    else:
        fy = fx
    cx, cy = number("cx", width / 2), number("cy", height / 2)
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
        raise SceneError(f"{json_path}: intrinsics of {image_path.name} must be finite with positive focal lengths")
    dist = distortion_tensor(*(number(k, 0.0) for k in ("k1", "k2", "p1", "p2", "k3")))
    return intrinsics_matrix(fx, fy, cx, cy), width, height, dist


def _positive_number(value, key: str, json_path: Path) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise SceneError(f"{json_path}: {key} must be a positive number, got {value!r}")
    return number


def _per_frame_files(frames: list[dict], key: str, base: Path, json_path: Path) -> list[Path | None]:
    """Each frame's `key` file (sorted frames), or all None; SceneError if only some frames have it or one is missing."""
    have = [key in fr for fr in frames]
    if not any(have):
        return [None] * len(frames)
    if not all(have):
        missing = next(fr["file_path"] for fr, h in zip(frames, have) if not h)
        raise SceneError(f"{json_path}: {key} is given for {sum(have)} of {len(frames)} frames (every frame or none; "
                         f"first without it: {missing})")
    out = []
    for fr in frames:
        if not isinstance(fr[key], str):
            raise SceneError(f"{json_path}: {key} of {fr['file_path']} must be a path string, got {fr[key]!r}")
        p = base / fr[key]
        if not p.is_file():
            raise SceneError(f"{p}: {key} file is missing (listed in {json_path} for {fr['file_path']})")
        out.append(p)
    return out


def _applied_transform(xyz: np.ndarray, meta: dict, json_path: Path) -> np.ndarray:  # [N, 3] -> [N, 3]
    """nerfstudio's `applied_transform` (and `applied_scale`): PLY frame -> poses' frame."""
    if "applied_transform" in meta:
        try:
            A = np.asarray(meta["applied_transform"], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise SceneError(f"{json_path}: applied_transform is not a matrix of numbers ({e})") from e
        if A.shape not in ((3, 4), (4, 4)) or not np.isfinite(A).all():
            raise SceneError(f"{json_path}: applied_transform must be a finite 3x4 or 4x4 matrix, got shape {A.shape}")
        if A.shape == (4, 4) and not np.allclose(A[3], [0, 0, 0, 1]):
            raise SceneError(f"{json_path}: applied_transform's last row must be 0 0 0 1, got {A[3].tolist()}")
        xyz = xyz @ A[:3, :3].T + A[:3, 3]
    if "applied_scale" in meta:
        xyz = xyz * _positive_number(meta["applied_scale"], "applied_scale", json_path)
    return xyz


def read_nerfstudio(
    path: str | Path,
    holdout_every: int = 8,
    max_points: int | None = None,
    radius: float = 1.0,
    seed: int = 0,
) -> SceneData:
    """Read a `transforms.json` scene (path: the file or its folder) into SceneData."""
    path = Path(path)
    json_path = path / "transforms.json" if path.is_dir() else path
    if not json_path.is_file():
        raise SceneError(f"{json_path}: transforms.json is missing")
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SceneError(f"{json_path}: cannot read JSON ({e})") from e
    base = json_path.parent
    if not isinstance(meta, dict):
        raise SceneError(f"{json_path}: expected a JSON object with a frames list, got a {type(meta).__name__}")
    raw_frames = meta.get("frames") or []
    if not isinstance(raw_frames, list):
        raise SceneError(f"{json_path}: frames must be a list, got a {type(raw_frames).__name__}")
    if not raw_frames:
        raise SceneError(f"{json_path}: no frames listed")
    for i, fr in enumerate(raw_frames):
        if not isinstance(fr, dict) or not isinstance(fr.get("file_path"), str) or "transform_matrix" not in fr:
            raise SceneError(f"{json_path}: frame {i} is not an object with a file_path string and a transform_matrix")
    globals_ = {k: v for k, v in meta.items() if k != "frames"}
    raw_frames = sorted(raw_frames, key=lambda f: str(f.get("file_path", "")))

    aux = {key: _per_frame_files(raw_frames, key, base, json_path) for key in ("mask_path", "depth_file_path")}
    depth_unit = _positive_number(meta.get("depth_unit_scale_factor", DEFAULT_DEPTH_UNIT_SCALE), "depth_unit_scale_factor", json_path)
    entries = []  # (image_path, K, w, h, dist, c2w_world)
    for i, fr in enumerate(raw_frames):
        if "file_path" not in fr or "transform_matrix" not in fr:
            raise SceneError(f"{json_path}: frame {i} lacks file_path or transform_matrix")
        image_path = _resolve_image(base, fr["file_path"], json_path)
        K, w, h, dist = _intrinsics({**globals_, **fr}, image_path, json_path)
        source = f"{json_path} (frame {fr['file_path']})"
        try:
            matrix = np.asarray(fr["transform_matrix"], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise SceneError(f"{source}: transform_matrix is not a matrix of numbers ({e})") from e
        c2w_gl = checked_pose(matrix, source=source)
        entries.append((image_path, K, w, h, dist, c2w_gl @ OPENGL_TO_OPENCV))

    tf, center = object_transform(np.stack([e[5][:3, 3] for e in entries]), radius)
    frames = [
        Frame(image_path=p, camera=make_camera(K, pose_to_scene_np(c2w, tf, center), w, h, name=p.stem), cam_name=p.stem, distortion=dist, timestep=i,
              loss_mask_path=aux["mask_path"][i], depth_path=aux["depth_file_path"][i], depth_scale=depth_unit * float(tf.scale))
        for i, (p, K, w, h, dist, c2w) in enumerate(entries)
    ]

    points, colors = torch.zeros(0, 3), None
    ply_key = "ply_file_path" if "ply_file_path" in meta else "ply_file" if "ply_file" in meta else None
    if ply_key is not None:
        xyz, rgb = read_ply_points(base / meta[ply_key])
        xyz = _applied_transform(xyz, meta, json_path)
        keep = subsample(len(xyz), max_points, seed)
        points = torch.from_numpy(points_to_scene_np(xyz[keep], tf, center)).float()
        colors = torch.from_numpy(rgb[keep]).float() if rgb is not None else None

    train_ids, test_ids = holdout_split(len(frames), holdout_every)
    return SceneData(
        frames=frames,
        points=points,
        point_colors=colors,
        transform=tf,
        train_ids=train_ids,
        test_ids=test_ids,
        source=str(json_path),
        kind="generic",
        extra={"format": "nerfstudio"},
    )
