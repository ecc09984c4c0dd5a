"""DriveStudio processed scenes (all six datasets): reader (into SceneData) and Waymo writer (for SynthStreet).

Layout of one scene folder (DriveStudio's `datasets/waymo/waymo_preprocess.py`; the other datasets'
differences are in `faithfusion.data.ds_layouts` and docs/data_layouts.md):

    images/{t:03d}_{cam}.jpg          raw camera images (cam 0-4: front, front-left, front-right, left, right)
    extrinsics/{cam}.txt              4x4 camera-to-vehicle, camera axes in *Waymo's* camera frame
    intrinsics/{cam}.txt              fx fy cx cy k1 k2 p1 p2 k3 (pixels of the raw image, OpenCV model)
    ego_pose/{t:03d}.txt              4x4 vehicle-to-world
    lidar/{t:03d}.bin                 float32 [M, 14], see LIDAR_COLUMNS; points in the *vehicle* frame of t
    sky_masks/{t:03d}_{cam}.png       255 = sky
    dynamic_masks/{all,human,vehicle}/{t:03d}_{cam}.png
    fine_dynamic_masks/{all,human,vehicle}/{t:03d}_{cam}.png   optional; used instead of dynamic_masks/ when present
    instances/instances_info.json     {id: {id, class_name, frame_annotations: {frame_idx, obj_to_world, box_size}}}
    instances/frame_instances.json    {frame: [instance ids]}

Conventions, as DriveStudio's `datasets/waymo/waymo_sourceloader.py` reads them:

- Extrinsics are Waymo's `camera.extrinsic.transform` saved as is: camera-to-vehicle where the
  camera frame has Waymo's axes (x forward, y left, z up). The OpenCV camera-to-vehicle is
  `extrinsic @ OPENCV_TO_WAYMO_CAM` (DriveStudio's OPENCV2DATASET).
- Lidar points (columns 3:6) and origins (0:3) are in the vehicle frame of their timestep
  (Waymo's range-image conversion returns vehicle-frame points); DriveStudio maps them to the
  world with that timestep's ego pose. Flows (6:9) are velocities in m/s in the vehicle frame.
- Scene coordinates = the first selected ego frame, as DriveStudio does (`inv(ego_start) @ x`):
  metric (scale 1.0, so lane shifts stay in metres), x forward, y left, z up at t = start.
  `rotate_to_first_ego=False` only re-centres (world axes kept). Recorded in SceneTransform.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from faithfusion.data.common import (
    IMAGE_SUFFIXES,
    checked_pose,
    distortion_tensor,
    find_image,
    invert_rigid_np,
    intrinsics_matrix,
    make_camera,
    pose_to_scene_np,
    read_numbers,
    read_pose_txt,
    subsample,
)
from faithfusion.data.images import distort_normalized, image_size, load_raw_image
from faithfusion.utils.atomic import atomic_write
from faithfusion.utils.jsonio import read_json, save_json_atomic
from faithfusion.data.scene import Frame, SceneData, SceneError, SceneTransform, holdout_split

from faithfusion.data.ds_layouts import OPENCV_TO_WAYMO_CAM, Layout, camera_to_opencv, detect_layout, get_layout, level_vehicle_frame
from faithfusion.data.ds_layouts import WAYMO_LIDAR_COLUMNS as LIDAR_COLUMNS
DYNAMIC_CLASSES = ("all", "human", "vehicle")


def opencv_cam_to_ego(extrinsic: np.ndarray) -> np.ndarray:  # [4, 4]
    """DriveStudio extrinsic (camera-to-vehicle, Waymo camera axes) -> OpenCV camera-to-vehicle."""
    return np.asarray(extrinsic, dtype=np.float64) @ OPENCV_TO_WAYMO_CAM


def waymo_extrinsic(cam_to_ego_opencv: np.ndarray) -> np.ndarray:  # [4, 4]
    """OpenCV camera-to-vehicle -> the extrinsic as DriveStudio stores it (Waymo camera axes)."""
    return np.asarray(cam_to_ego_opencv, dtype=np.float64) @ OPENCV_TO_WAYMO_CAM.T


# --- reading -----------------------------------------------------------------------------------


def read_intrinsics(path: Path) -> tuple[np.ndarray, np.ndarray]:  # K [3, 3], dist [5]
    values = read_numbers(path, "intrinsics")
    if values.size < 4:
        raise SceneError(f"{path}: intrinsics need at least 4 numbers (fx fy cx cy), got {values.size}")
    if values.size > 9:
        raise SceneError(f"{path}: intrinsics hold at most 9 numbers (fx fy cx cy k1 k2 p1 p2 k3), got {values.size}")
    if not np.isfinite(values).all() or values[0] <= 0 or values[1] <= 0:
        raise SceneError(f"{path}: intrinsics must be finite with positive focal lengths, got {values[:4].tolist()}")
    dist = np.zeros(5)
    dist[: values.size - 4] = values[4:]
    return intrinsics_matrix(*values[:4]), dist


def read_lidar_bin(path: Path, columns: Sequence[str] = LIDAR_COLUMNS) -> np.ndarray:  # [M, C] float32
    """One DriveStudio lidar sweep of `columns` (Waymo's 14 by default); SceneError if missing,
    empty or not [M, len(columns)] float32."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: lidar file is missing")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size == 0:
        raise SceneError(f"{path}: no points in the lidar file (it is empty)")
    if raw.size % len(columns) != 0:
        raise SceneError(
            f"{path}: lidar file size is not a multiple of {len(columns)} float32 columns ({' '.join(columns)})"
        )
    return raw.reshape(-1, len(columns))


def _timesteps(root: Path, start: int, end: int | None, pose_dir: str = "ego_pose") -> list[int]:
    pose_dir_path = root / pose_dir
    what = pose_dir.replace("_", " ")  # "ego pose" or "lidar pose"
    if not pose_dir_path.is_dir():
        raise SceneError(f"{pose_dir_path}: not a DriveStudio scene (no {pose_dir}/ folder)")
    steps = sorted(int(p.stem) for p in pose_dir_path.glob("*.txt") if p.stem.isdigit())
    steps = [t for t in steps if t >= start and (end is None or t < end)]
    if not steps:
        raise SceneError(f"{pose_dir_path}: no {what}s in the timestep range [{start}, {end})")
    stems = (p.stem.split("_")[0] for p in (root / "images").glob("*_*") if p.suffix in IMAGE_SUFFIXES)
    image_steps = {int(x) for x in stems if x.isdigit()}
    orphans = sorted(t for t in image_steps - set(steps) if steps[0] <= t <= steps[-1])
    if orphans:
        raise SceneError(f"{pose_dir_path / f'{orphans[0]:03d}.txt'}: {what} is missing (timestep {orphans[0]} has images)")
    return steps


def _resolve_layout(root: Path, layout: str | Layout | None) -> Layout:
    if isinstance(layout, Layout):
        return layout
    return detect_layout(root) if layout is None else get_layout(layout)


def _check_camera(root: Path, cam: int, layout: Layout) -> None:
    """A camera id the layout does not have and that has no intrinsics: name the layout's cameras."""
    path = root / "intrinsics" / f"{cam}.txt"
    if not path.is_file() and not 0 <= cam < len(layout.cameras):
        raise SceneError(f"{path}: intrinsics file is missing ({layout.title} cameras are {layout.camera_list()})")


def _dynamic_mask_dir(root: Path) -> str | None:
    """DriveStudio's choice: fine_dynamic_masks/ when that folder exists, else dynamic_masks/."""
    for name in ("fine_dynamic_masks", "dynamic_masks"):
        if (root / name).is_dir():
            return name
    return None


def _read_instances(root: Path, tf: SceneTransform, center: np.ndarray) -> dict | None:
    info_path, frames_path = root / "instances" / "instances_info.json", root / "instances" / "frame_instances.json"
    if not info_path.is_file():
        return None
    info = read_json(info_path, SceneError)
    frame_instances = read_json(frames_path, SceneError) if frames_path.is_file() else {}
    if not isinstance(info, dict):
        raise SceneError(f"{info_path}: expected an object of instances, got a {type(info).__name__}")
    if not isinstance(frame_instances, dict):
        raise SceneError(f"{frames_path}: expected an object of frames, got a {type(frame_instances).__name__}")
    out = {}
    for key, inst in info.items():
        ann = inst.get("frame_annotations", {}) if isinstance(inst, dict) else None
        if not isinstance(ann, dict):
            raise SceneError(f"{info_path}: instance {key} has no frame_annotations object")
        poses = []
        for idx, o2w in zip(ann.get("frame_idx", []), ann.get("obj_to_world", [])):
            source = f"{info_path} (instance {key}, frame {idx})"
            try:
                M = np.asarray(o2w, dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise SceneError(f"{source}: obj_to_world is not a matrix of numbers ({e})") from e
            if M.size != 16:
                raise SceneError(f"{source}: obj_to_world must be a 4x4 matrix, got {M.size} numbers")
            T = checked_pose(M.reshape(4, 4), source=source)
            poses.append(pose_to_scene_np(T, tf, center).tolist())
        out[key] = {**inst, "frame_annotations": {**ann, "obj_to_world": poses}}
    return {"instances_info": out, "frame_instances": frame_instances, "coordinates": "scene"}


def _color_points(points: np.ndarray, point_t: np.ndarray, frames: list[Frame], frame_ids: list[int], max_width: int) -> np.ndarray:
    """Colour [N, 3] points from the raw images of the given frames at each point's timestep (else grey)."""
    colors = np.full((len(points), 3), 0.5, dtype=np.float32)
    done = np.zeros(len(points), dtype=bool)
    order = np.argsort(point_t, kind="stable")
    steps, starts = np.unique(point_t[order], return_index=True)
    by_step = dict(zip(steps.tolist(), np.split(order, starts[1:])))  # timestep -> point indices
    for i in frame_ids:
        frame = frames[i]
        sel = by_step.get(frame.timestep, np.zeros(0, dtype=np.int64))
        sel = sel[~done[sel]]
        if sel.size == 0:
            continue
        cam = frame.camera
        V = cam.viewmat.double().numpy()
        X = points[sel].astype(np.float64) @ V[:3, :3].T + V[:3, 3]  # [M, 3] camera coords
        front = X[:, 2] > 1e-3
        z = np.where(front, X[:, 2], 1.0)
        x, y = X[:, 0] / z, X[:, 1] / z
        K = cam.K.double().numpy()
        u, v = K[0, 0] * x + K[0, 2], K[1, 1] * y + K[1, 2]  # pinhole pixels
        # the forward distortion model folds back far outside the image: keep points whose
        # pinhole projection is itself near the image
        mw, mh = 0.25 * cam.width, 0.25 * cam.height
        ok = front & (u >= -mw) & (u < cam.width + mw) & (v >= -mh) & (v < cam.height + mh)
        if frame.distortion is not None:
            xd, yd = distort_normalized(torch.from_numpy(x), torch.from_numpy(y), tuple(frame.distortion.tolist()))
            u, v = K[0, 0] * xd.numpy() + K[0, 2], K[1, 1] * yd.numpy() + K[1, 2]  # raw-image pixels
        ok &= (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
        if not ok.any():
            continue
        image, (W, H) = load_raw_image(frame.image_path, max_width)
        if (W, H) != (cam.width, cam.height):
            raise SceneError(f"{frame.image_path}: wrong image size {W}x{H}, the camera expects {cam.width}x{cam.height}")
        h, w = image.shape[:2]
        col = np.clip((u[ok] * w / W).astype(int), 0, w - 1)
        row = np.clip((v[ok] * h / H).astype(int), 0, h - 1)
        colors[sel[ok]] = image.numpy()[row, col]
        done[sel[ok]] = True
    return colors


def read_drivestudio(
    path: str | Path,
    holdout_every: int = 8,
    cameras: Sequence[int] | None = None,
    start: int = 0,
    end: int | None = None,
    max_points: int | None = 500_000,
    load_lidar: bool = True,
    color_points: bool = True,
    points_from_test: bool = True,
    rotate_to_first_ego: bool = True,
    undistort: bool = True,
    color_max_width: int = 480,
    seed: int = 0,
    max_lidar_range: float = 1000.0,
    layout: str | Layout | None = None,
) -> SceneData:
    """Read a DriveStudio processed scene folder (any of its six datasets) into a driving SceneData.

    `layout` ("waymo", "nuscenes", "pandaset", "kitti", "argoverse", "nuplan") is detected from the
    folder when None (see `ds_layouts.detect_layout`). `cameras` defaults to the layout's first three
    (KITTI: both). Timesteps `start <= t < end` (those with a pose); every `holdout_every`-th
    timestep (all of its cameras) is held out for testing. `SceneData.points` are the lidar points
    of all timesteps (as DriveStudio uses them; `points_from_test=False` keeps the training ones
    only), at most `max_points`, coloured from the *training* images only (a held-out timestep's
    points from the nearest training timestep) where they project, else grey. Each Frame carries its
    timestep's whole sweep in `lidar_points` (scene coordinates). Lidar returns that are not
    finite or lie farther than `max_lidar_range` metres from the sensor along any axis are
    dropped (sensor outliers such as 1e30 would otherwise overflow the Gaussians' initial scales).
    """
    root = Path(path)
    layout = _resolve_layout(root, layout)
    cameras = tuple(layout.default_cameras if cameras is None else cameras)
    for cam in cameras:
        _check_camera(root, cam, layout)
    steps = _timesteps(root, start, end, layout.pose_dir)
    what = layout.pose_dir.replace("_", " ")
    pose_world = {t: read_pose_txt(root / layout.pose_dir / f"{t:03d}.txt", what) for t in steps}  # [4, 4] each

    cam_world: dict[tuple[int, int], np.ndarray] = {}  # (t, cam) -> OpenCV camera-to-world, per-frame layouts
    if layout.per_frame_extrinsics:
        for t in steps:
            for cam in sorted({0, *cameras} if layout.level_vehicle else set(cameras)):
                ext = read_pose_txt(root / "extrinsics" / f"{t:03d}_{cam}.txt", "extrinsics")
                cam_world[(t, cam)] = camera_to_opencv(ext, layout)
    if layout.level_vehicle:
        ego_world = {
            t: level_vehicle_frame(pose_world[t], cam_world[(t, 0)], str(root / "extrinsics" / f"{t:03d}_0.txt"))
            for t in steps
        }
    else:
        ego_world = pose_world

    first = ego_world[steps[0]]
    center = first[:3, 3].copy()
    rotation = first[:3, :3].T if rotate_to_first_ego else np.eye(3)
    tf = SceneTransform(torch.from_numpy(center).float(), torch.from_numpy(rotation.copy()).float(), 1.0)
    ego_scene = {t: pose_to_scene_np(ego_world[t], tf, center) for t in steps}
    sensor_scene = {t: pose_to_scene_np(pose_world[t], tf, center) for t in steps} if layout.level_vehicle else ego_scene

    calib = {}
    for cam in cameras:
        K, dist = read_intrinsics(root / "intrinsics" / f"{cam}.txt")
        if layout.per_frame_extrinsics:
            t0 = steps[0]
            cam_to_ego = invert_rigid_np(ego_world[t0]) @ cam_world[(t0, cam)]  # at the first timestep
        else:
            extrinsic = read_pose_txt(root / "extrinsics" / f"{cam}.txt", "extrinsics")
            cam_to_ego = camera_to_opencv(extrinsic, layout)
        calib[cam] = (K, dist, cam_to_ego)

    lidar_scene: dict[int, np.ndarray] = {}
    lidar_dir = root / "lidar"
    xyz = layout.xyz_column
    if load_lidar and lidar_dir.is_dir():
        for t in steps:
            sweep = read_lidar_bin(lidar_dir / f"{t:03d}.bin", layout.lidar_columns)
            pts = sweep[:, xyz : xyz + 3].astype(np.float64)
            pts = pts[np.isfinite(pts).all(axis=1) & (np.abs(pts).max(axis=1, initial=0.0) <= max_lidar_range)]
            if len(pts) == 0:
                raise SceneError(f"{lidar_dir / f'{t:03d}.bin'}: no finite points within {max_lidar_range:g} m in the lidar file")
            E = sensor_scene[t]
            lidar_scene[t] = (pts @ E[:3, :3].T + E[:3, 3]).astype(np.float32)  # [M, 3] sensor -> scene

    mask_dir = _dynamic_mask_dir(root)
    class_masks: dict[str, list[Path | None]] = {"human": [], "vehicle": []}
    frames: list[Frame] = []
    sizes: dict[int, tuple[int, int]] = {}
    for t in steps:
        lidar_t = torch.from_numpy(lidar_scene[t]).float() if t in lidar_scene else None
        for cam in cameras:
            stem = root / "images" / f"{t:03d}_{cam}"
            image_path = find_image(stem)
            if image_path is None:
                raise SceneError(f"{stem}.jpg: image file is missing")
            if cam not in sizes:
                sizes[cam] = image_size(image_path)
            K, dist, cam_to_ego = calib[cam]
            if layout.per_frame_extrinsics:
                c2w = pose_to_scene_np(cam_world[(t, cam)], tf, center)
            else:
                c2w = ego_scene[t] @ cam_to_ego
            camera = make_camera(K, c2w, *sizes[cam], name=f"{t:03d}_{cam}", cam_id=cam, timestep=t)
            sky = root / "sky_masks" / f"{t:03d}_{cam}.png"
            masks = {
                cls: root / mask_dir / cls / f"{t:03d}_{cam}.png" if mask_dir else None for cls in ("all", "human", "vehicle")
            }
            masks = {cls: m if m is not None and m.is_file() else None for cls, m in masks.items()}
            for cls in class_masks:
                class_masks[cls].append(masks[cls])
            frames.append(
                Frame(
                    image_path=image_path,
                    camera=camera,
                    timestep=t,
                    cam_name=str(cam),
                    distortion=distortion_tensor(*dist) if undistort else None,
                    sky_mask_path=sky if sky.is_file() else None,
                    dynamic_mask_path=masks["all"],
                    ego_to_world=torch.from_numpy(ego_scene[t]).float(),
                    lidar_points=lidar_t,
                )
            )

    train_t, test_t = holdout_split(len(steps), holdout_every)
    test_steps = {steps[i] for i in test_t}
    train_ids = [i for i, f in enumerate(frames) if f.timestep not in test_steps]
    test_ids = [i for i, f in enumerate(frames) if f.timestep in test_steps]

    point_steps = [t for t in steps if t in lidar_scene and (points_from_test or t not in test_steps)]
    if point_steps:
        pts = np.concatenate([lidar_scene[t] for t in point_steps])  # [N, 3]
        pts_t = np.concatenate([np.full(len(lidar_scene[t]), t) for t in point_steps])  # [N]
        keep = subsample(len(pts), max_points, seed)
        pts, pts_t = pts[keep], pts_t[keep]
        colors = None
        train_steps = np.array(sorted({frames[i].timestep for i in train_ids}))
        if color_points and len(train_steps):
            # colour from training images only: a held-out timestep's points use the nearest training timestep
            nearest = train_steps[np.abs(train_steps[None, :] - np.array(steps)[:, None]).argmin(axis=1)]
            pts_ct = nearest[np.searchsorted(np.array(steps), pts_t)]  # [N] (steps are sorted)
            colors = _color_points(pts, pts_ct, frames, train_ids, color_max_width)
        points = torch.from_numpy(pts)
        point_colors = torch.from_numpy(colors) if colors is not None else None
    else:
        points, point_colors = torch.zeros(0, 3), None

    return SceneData(
        frames=frames,
        points=points,
        point_colors=point_colors,
        transform=tf,
        train_ids=train_ids,
        test_ids=test_ids,
        source=str(root),
        kind="driving",
        instances=_read_instances(root, tf, center),
        extra={
            "format": "drivestudio",
            "layout": layout.name,
            "dynamic_mask_dir": mask_dir,  # "fine_dynamic_masks" when present (DriveStudio's choice), else "dynamic_masks"
            "class_mask_paths": class_masks,  # {"human"|"vehicle": [path or None per frame]}
            "timesteps": steps,
            "test_timesteps": sorted(test_steps),
            "cameras": list(cameras),
            # OpenCV axes; per-frame layouts (nuScenes, PandaSet): at the first timestep
            "cam_to_ego": {cam: torch.from_numpy(calib[cam][2]).float() for cam in cameras},
        },
    )


# --- writing -----------------------------------------------------------------------------------


def _save_jpeg(path: Path, image: np.ndarray) -> None:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{path}: image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    atomic_write(path, save=lambda tmp: Image.fromarray(image).save(tmp, format="JPEG", quality=95, subsampling=0))


def _save_mask(path: Path, mask: np.ndarray) -> None:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{path}: mask must be [H, W] bool, got shape {mask.shape}")
    atomic_write(path, save=lambda tmp: Image.fromarray(mask.astype(bool).astype(np.uint8) * 255).save(tmp, format="PNG"))


def _save_matrix(path: Path, M: np.ndarray) -> None:
    atomic_write(path, save=lambda tmp: np.savetxt(tmp, np.asarray(M, dtype=np.float64)))


def write_drivestudio_frame(
    root: Path,
    t: int,
    ego_to_world: np.ndarray,
    images: dict[int, np.ndarray],
    lidar: np.ndarray,
    sky_masks: dict[int, np.ndarray] | None = None,
    dynamic_masks: dict[str, dict[int, np.ndarray]] | None = None,
) -> None:
    """Write one timestep: images (JPEG q95), ego pose (4x4 vehicle-to-world), lidar sweep
    ([M, 14] float32, points in the vehicle frame of `t`, see LIDAR_COLUMNS), optional sky masks
    and dynamic masks ({"all"|"human"|"vehicle": {cam: [H, W] bool}}). Every file is atomic."""
    root = Path(root)
    ego = checked_pose(ego_to_world, source=f"ego_to_world of timestep {t}")
    lidar = np.asarray(lidar)
    if lidar.ndim != 2 or lidar.shape[1] != len(LIDAR_COLUMNS):
        raise ValueError(f"lidar of timestep {t} must be [M, {len(LIDAR_COLUMNS)}], got {lidar.shape}")
    lidar = np.ascontiguousarray(lidar, dtype=np.float32)
    for cam, image in images.items():
        _save_jpeg(root / "images" / f"{t:03d}_{int(cam)}.jpg", image)
    for cam, mask in (sky_masks or {}).items():
        _save_mask(root / "sky_masks" / f"{t:03d}_{int(cam)}.png", mask)
    for cls, masks in (dynamic_masks or {}).items():
        if cls not in DYNAMIC_CLASSES:
            raise ValueError(f"dynamic mask class must be one of {DYNAMIC_CLASSES}, got {cls!r}")
        for cam, mask in masks.items():
            _save_mask(root / "dynamic_masks" / cls / f"{t:03d}_{int(cam)}.png", mask)
    atomic_write(root / "lidar" / f"{t:03d}.bin", save=lambda tmp: lidar.tofile(tmp))
    # the ego pose last: a reader lists timesteps by their ego pose, so a timestep appears complete
    _save_matrix(root / "ego_pose" / f"{t:03d}.txt", ego)


def write_drivestudio_calib(root: Path, intrinsics: dict[int, np.ndarray], extrinsics: dict[int, np.ndarray]) -> None:
    """Write intrinsics/{cam}.txt (fx fy cx cy k1 k2 p1 p2 k3) and extrinsics/{cam}.txt.

    Extrinsics are camera-to-vehicle with *Waymo camera axes* (x forward, y left, z up), as
    DriveStudio stores them; from an OpenCV camera-to-vehicle use `waymo_extrinsic(...)`.
    """
    root = Path(root)
    for cam, values in intrinsics.items():
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size != 9:
            raise ValueError(f"intrinsics of camera {cam} must be 9 numbers (fx fy cx cy k1 k2 p1 p2 k3), got {values.size}")
        _save_matrix(root / "intrinsics" / f"{int(cam)}.txt", values)
    for cam, T in extrinsics.items():
        _save_matrix(root / "extrinsics" / f"{int(cam)}.txt", checked_pose(T, source=f"extrinsics of camera {cam}"))


def write_drivestudio_instances(root: Path, instances_info: dict, frame_instances: dict) -> None:
    """Write instances/instances_info.json and instances/frame_instances.json (DriveStudio's schema:
    obj_to_world are 4x4 object-to-world in the world frame of the ego poses, box_size in metres)."""
    root = Path(root)
    for name, payload in (("instances_info.json", instances_info), ("frame_instances.json", frame_instances)):
        save_json_atomic(root / "instances" / name, payload)
