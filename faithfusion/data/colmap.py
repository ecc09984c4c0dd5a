"""COLMAP sparse models (binary or text): cameras, images (poses) and points3D.

Facts from COLMAP's `doc/format.rst` and `scripts/python/read_write_model.py` (little endian):

- cameras.bin: uint64 count; per camera int32 id, int32 model_id, uint64 width, uint64 height,
  float64 params[n(model)].
- images.bin: uint64 count; per image int32 id, float64 qw qx qy qz, float64 tx ty tz,
  int32 camera_id, name (bytes up to NUL), uint64 n2d, n2d x (float64 x, float64 y, int64 point3D_id).
- points3D.bin: uint64 count; per point uint64 id, float64 xyz, uint8 rgb, float64 error,
  uint64 track length, length x (int32 image_id, int32 point2D_idx).
- Text files hold the same, one camera / point per line, two lines per image; '#' comments.
- (q, t) is world-to-camera with OpenCV axes. Pixel centres at +0.5 (gsplat's convention too).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

from faithfusion.data.common import (
    checked_pose,
    distortion_tensor,
    intrinsics_matrix,
    invert_rigid_np,
    make_camera,
    object_transform,
    points_to_scene_np,
    pose_to_scene_np,
    subsample,
)
from faithfusion.data.images import image_size
from faithfusion.data.scene import Frame, SceneData, SceneError, holdout_split

# model id -> (name, number of params); all listed so that any cameras.bin parses
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
    4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}  # fmt: skip
MODEL_IDS = {name: (mid, n) for mid, (name, n) in CAMERA_MODELS.items()}
SUPPORTED = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
TWO_FOCAL_MODELS = ("PINHOLE", "OPENCV", "OPENCV_FISHEYE", "FULL_OPENCV", "FOV", "THIN_PRISM_FISHEYE", "RAD_TAN_THIN_PRISM_FISHEYE")
"""Models whose params start with fx, fy; the others start with a single f."""


class _Bin:
    """Sequential little-endian reads that report a short file by name."""

    def __init__(self, path: Path):
        self.path, self.data, self.pos = path, path.read_bytes(), 0

    def read(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise SceneError(f"{self.path}: file ends early (truncated at byte {len(self.data)})")
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return out

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise SceneError(f"{self.path}: file ends early (truncated at byte {len(self.data)})")
        self.pos += n

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise SceneError(f"{self.path}: file ends early inside an image name")
        s = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return s


def _text_lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines()]


# --- cameras -----------------------------------------------------------------------------------


def read_cameras(path: Path) -> dict[int, tuple[str, int, int, np.ndarray]]:
    """{camera_id: (model name, width, height, params)} from cameras.bin or cameras.txt."""
    cams = {}
    if path.suffix == ".bin":
        f = _Bin(path)
        (count,) = f.read("Q")
        for _ in range(count):
            cid, mid, w, h = f.read("iiQQ")
            if mid not in CAMERA_MODELS:
                raise SceneError(f"{path}: unknown camera model id {mid} (camera {cid})")
            name, n = CAMERA_MODELS[mid]
            cams[cid] = (name, int(w), int(h), np.asarray(f.read(f"{n}d")))
        return cams
    for ln in _text_lines(path):
        if not ln or ln.startswith("#"):
            continue
        tok = ln.split()
        try:
            cid, name, w, h = int(tok[0]), tok[1], int(tok[2]), int(tok[3])
            params = np.asarray([float(x) for x in tok[4:]])
        except (IndexError, ValueError) as e:
            raise SceneError(f"{path}: bad camera line {ln!r} ({e})") from e
        if name in MODEL_IDS and params.size != MODEL_IDS[name][1]:
            raise SceneError(f"{path}: camera {cid} ({name}) needs {MODEL_IDS[name][1]} params, got {params.size}")
        cams[cid] = (name, w, h, params)
    return cams


def check_camera(cid: int, model: str, width: int, height: int, params: np.ndarray, source: str) -> None:
    """SceneError unless the camera has a positive size and finite parameters with positive focal lengths."""
    if width <= 0 or height <= 0:
        raise SceneError(f"{source}: camera {cid} has an invalid size {width}x{height}")
    if not np.isfinite(params).all():
        raise SceneError(f"{source}: camera {cid} ({model}) has NaN or infinite parameters {params.tolist()}")
    n_focal = 2 if model in TWO_FOCAL_MODELS else 1
    if (params[:n_focal] <= 0).any():
        raise SceneError(f"{source}: camera {cid} ({model}) has a non-positive focal length {params[:n_focal].tolist()}")


def camera_intrinsics(model: str, params: np.ndarray, source: str) -> tuple[np.ndarray, torch.Tensor | None]:
    """K [3, 3] and OpenCV distortion (k1 k2 p1 p2 k3, or None) of a supported COLMAP model."""
    p = [float(x) for x in params]
    if model == "SIMPLE_PINHOLE":
        f, cx, cy = p
        return intrinsics_matrix(f, f, cx, cy), None
    if model == "PINHOLE":
        fx, fy, cx, cy = p
        return intrinsics_matrix(fx, fy, cx, cy), None
    if model == "SIMPLE_RADIAL":
        f, cx, cy, k = p
        return intrinsics_matrix(f, f, cx, cy), distortion_tensor(k1=k)
    if model == "RADIAL":
        f, cx, cy, k1, k2 = p
        return intrinsics_matrix(f, f, cx, cy), distortion_tensor(k1=k1, k2=k2)
    if model == "OPENCV":
        fx, fy, cx, cy, k1, k2, p1, p2 = p
        return intrinsics_matrix(fx, fy, cx, cy), distortion_tensor(k1, k2, p1, p2)
    raise SceneError(f"{source}: camera model {model} is not supported (only {', '.join(SUPPORTED)})")


# --- images ------------------------------------------------------------------------------------


def qvec_to_rotmat(q: np.ndarray) -> np.ndarray:  # [3, 3]; q = (w, x, y, z), not renormalised
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * y * y - 2 * z * z, 2 * x * y - 2 * w * z, 2 * z * x + 2 * w * y],
            [2 * x * y + 2 * w * z, 1 - 2 * x * x - 2 * z * z, 2 * y * z - 2 * w * x],
            [2 * z * x - 2 * w * y, 2 * y * z + 2 * w * x, 1 - 2 * x * x - 2 * y * y],
        ]
    )


def is_points2d_line(line: str) -> bool:
    """An images.txt POINTS2D line: empty, or (X, Y, POINT3D_ID) triples of numbers. An image line
    is never one, since it ends with the image's file name."""
    tok = line.split()
    if len(tok) % 3:
        return False
    try:
        [float(x) for x in tok]
    except ValueError:
        return False
    return True


def read_images(path: Path) -> list[tuple[str, int, np.ndarray]]:
    """[(name, camera_id, world-to-camera [4, 4] checked rigid)] from images.bin or images.txt."""
    raw = []  # (name, camera_id, qvec, tvec)
    if path.suffix == ".bin":
        f = _Bin(path)
        (count,) = f.read("Q")
        for _ in range(count):
            vals = f.read("i7di")
            name = f.cstring()
            (n2d,) = f.read("Q")
            f.skip(24 * n2d)
            raw.append((name, vals[8], np.asarray(vals[1:5]), np.asarray(vals[5:8])))
    else:
        lines = _text_lines(path)
        i = 0
        while i < len(lines):
            ln = lines[i]
            i += 1
            if not ln or ln.startswith("#"):
                continue
            tok = ln.split()
            try:
                q = np.asarray([float(x) for x in tok[1:5]])
                t = np.asarray([float(x) for x in tok[5:8]])
                raw.append((" ".join(tok[9:]), int(tok[8]), q, t))
            except (IndexError, ValueError) as e:
                raise SceneError(f"{path}: bad image line {ln!r} ({e})") from e
            if len(tok) < 10:
                raise SceneError(f"{path}: image line {ln!r} has no image name")
            if i < len(lines) and is_points2d_line(lines[i]):
                i += 1  # the POINTS2D line (may be empty); files written without them go on to the next image
    out = []
    for name, cid, q, t in raw:
        w2c = np.eye(4)
        w2c[:3, :3], w2c[:3, 3] = qvec_to_rotmat(q), t
        out.append((name, cid, checked_pose(w2c, source=f"{path} (image {name})")))
    return out


# --- points ------------------------------------------------------------------------------------


def read_points3d(path: Path) -> tuple[np.ndarray, np.ndarray]:  # xyz [N, 3], rgb [N, 3] in [0, 1]
    xyz, rgb = [], []
    if path.suffix == ".bin":
        f = _Bin(path)
        (count,) = f.read("Q")
        for _ in range(count):
            vals = f.read("Q3d3BdQ")
            xyz.append(vals[1:4])
            rgb.append(vals[4:7])
            f.skip(8 * vals[8])
    else:
        for ln in _text_lines(path):
            if not ln or ln.startswith("#"):
                continue
            tok = ln.split()
            try:
                xyz.append([float(x) for x in tok[1:4]])
                rgb.append([int(x) for x in tok[4:7]])
            except (IndexError, ValueError) as e:
                raise SceneError(f"{path}: bad point line {ln[:80]!r} ({e})") from e
    if not xyz:
        raise SceneError(f"{path}: no points in the point file")
    return np.asarray(xyz, dtype=np.float64), np.asarray(rgb, dtype=np.float64) / 255.0


# --- scene -------------------------------------------------------------------------------------


def find_model(path: Path) -> tuple[Path, Path]:
    """(model folder, scene root) for a scene root, its sparse/ or a model folder itself."""
    has_model = lambda d: (d / "cameras.bin").is_file() or (d / "cameras.txt").is_file()  # noqa: E731
    for model, root in ((path / "sparse" / "0", path), (path / "sparse", path), (path, None)):
        if has_model(model):
            if root is None:
                root = path.parent.parent if path.parent.name == "sparse" else path.parent
            return model, root
    raise SceneError(f"{path}: no COLMAP model (cameras.bin or cameras.txt in sparse/0, sparse or the folder)")


def _model_file(model: Path, stem: str) -> Path:
    for suffix in (".bin", ".txt"):
        if (model / f"{stem}{suffix}").is_file():
            return model / f"{stem}{suffix}"
    raise SceneError(f"{model / (stem + '.bin')}: COLMAP file is missing (no .bin or .txt)")


def read_colmap(
    path: str | Path,
    holdout_every: int = 8,
    image_dir: str = "images",
    max_points: int | None = None,
    radius: float = 1.0,
    seed: int = 0,
) -> SceneData:
    """Read a COLMAP scene (root with sparse/0 or sparse/, or the model folder) into SceneData.

    Images come from `root/image_dir`; if they are a uniformly downscaled copy (e.g. `images_4`),
    K is scaled to their size. Frames are sorted by image name before the holdout split.
    """
    model, root = find_model(Path(path))
    cams = read_cameras(_model_file(model, "cameras"))
    images = sorted(read_images(_model_file(model, "images")), key=lambda x: x[0])
    if not images:
        raise SceneError(f"{_model_file(model, 'images')}: no registered images")

    intr: dict[int, tuple[np.ndarray, torch.Tensor | None, int, int]] = {}
    entries = []
    for name, cid, w2c in images:
        image_path = root / image_dir / name
        if not image_path.is_file():
            raise SceneError(f"{image_path}: image file is missing")
        if cid not in cams:
            raise SceneError(f"{_model_file(model, 'images')}: image {name} refers to unknown camera {cid}")
        if cid not in intr:
            mname, W, H, params = cams[cid]
            check_camera(cid, mname, W, H, params, source=str(_model_file(model, "cameras")))
            K, dist = camera_intrinsics(mname, params, source=f"{_model_file(model, 'cameras')} (camera {cid})")
            w, h = image_size(image_path)
            if (w, h) != (W, H):
                sx, sy = w / W, h / H
                if abs(sx - sy) > 0.01 * max(sx, sy) + 1.0 / min(W, H):
                    raise SceneError(f"{image_path}: wrong image size {w}x{h} for COLMAP camera {cid} of {W}x{H}")
                K = K.copy()
                K[0] *= sx
                K[1] *= sy
            intr[cid] = (K, dist, w, h)
        entries.append((image_path, cid, invert_rigid_np(w2c)))

    tf, center = object_transform(np.stack([e[2][:3, 3] for e in entries]), radius)
    frames = []
    for i, (image_path, cid, c2w) in enumerate(entries):
        K, dist, w, h = intr[cid]
        cam = make_camera(K, pose_to_scene_np(c2w, tf, center), w, h, name=image_path.stem, colmap_camera_id=cid)
        frames.append(Frame(image_path=image_path, camera=cam, timestep=i, cam_name=str(cid), distortion=dist))

    xyz, rgb = read_points3d(_model_file(model, "points3D"))
    keep = subsample(len(xyz), max_points, seed)
    train_ids, test_ids = holdout_split(len(frames), holdout_every)
    return SceneData(
        frames=frames,
        points=torch.from_numpy(points_to_scene_np(xyz[keep], tf, center)).float(),
        point_colors=torch.from_numpy(rgb[keep]).float(),
        transform=tf,
        train_ids=train_ids,
        test_ids=test_ids,
        source=str(model),
        kind="generic",
        extra={"format": "colmap"},
    )
