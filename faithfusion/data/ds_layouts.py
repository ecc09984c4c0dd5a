"""Which DriveStudio dataset wrote a processed scene folder, and what its files mean.

DriveStudio (github.com/ziyc/drivestudio) writes six datasets into one folder shape
(`images/{t:03d}_{cam}.jpg`, `intrinsics/{cam}.txt`, `lidar/{t:03d}.bin`, masks, instances) but
each with its own pose files, camera axes and lidar columns. `LAYOUTS` records them, read from
DriveStudio's `datasets/<name>/<name>_sourceloader.py` and `<name>_preprocess.py` (see
docs/data_layouts.md); `detect_layout` tells them apart from the folder alone.

Vehicle frame: every reader output uses a vehicle frame with x forward, y left, z up (lane shifts
move along +y, the trainer's "up" is +z). Waymo, KITTI (velodyne), Argoverse 2 and nuPlan store
such a pose in `ego_pose/`. PandaSet's `ego_pose/` is its lidar pose and nuScenes stores only
`lidar_pose/`, whose x/y axes are not forward/left; for those two the vehicle frame is *levelled*:
origin and z axis of the pose file, x = camera 0's viewing direction made perpendicular to z.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faithfusion.data.scene import SceneError

# Point in OpenCV camera axes (x right, y down, z forward) -> Waymo camera axes (x forward, y left, z up).
OPENCV_TO_WAYMO_CAM = np.array(
    [[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
WAYMO_LIDAR_COLUMNS = (
    "origin_x", "origin_y", "origin_z", "x", "y", "z", "flow_x", "flow_y", "flow_z",
    "flow_class", "ground", "intensity", "elongation", "laser_id",
)  # fmt: skip


@dataclass(frozen=True)
class Layout:
    """The files of one DriveStudio dataset layout and how to read them."""

    name: str  # "waymo", "nuscenes", "pandaset", "kitti", "argoverse", "nuplan"
    title: str
    cameras: tuple[str, ...]  # camera id i -> the dataset's camera name
    pose_dir: str  # "ego_pose" or "lidar_pose": {t:03d}.txt, 4x4 sensor-to-world, also the lidar points' frame
    per_frame_extrinsics: bool  # extrinsics/{t:03d}_{cam}.txt camera-to-world, else extrinsics/{cam}.txt camera-to-ego
    waymo_camera_axes: bool  # extrinsics in Waymo camera axes (x fwd, y left, z up), else OpenCV (x right, y down, z fwd)
    lidar_columns: tuple[str, ...]  # float32 columns of lidar/{t:03d}.bin
    level_vehicle: bool  # vehicle frame levelled from the pose file and camera 0 (see the module docstring)
    source: str  # DriveStudio file these facts were read from

    @property
    def xyz_column(self) -> int:
        return self.lidar_columns.index("x")

    @property
    def default_cameras(self) -> tuple[int, ...]:
        return tuple(range(min(3, len(self.cameras))))

    def camera_list(self) -> str:
        return ", ".join(f"{i}: {n}" for i, n in enumerate(self.cameras))


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            "waymo", "Waymo Open",
            ("front", "front_left", "front_right", "side_left", "side_right"),
            "ego_pose", False, True, WAYMO_LIDAR_COLUMNS, False,
            "datasets/waymo/waymo_sourceloader.py",
        ),
        Layout(
            "nuscenes", "nuScenes",
            ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK_LEFT", "CAM_BACK_RIGHT", "CAM_BACK"),
            "lidar_pose", True, False, ("x", "y", "z", "intensity"), True,
            "datasets/nuscenes/nuscenes_sourceloader.py",
        ),
        Layout(
            "pandaset", "PandaSet",
            ("front_camera", "front_left_camera", "front_right_camera", "left_camera", "right_camera", "back_camera"),
            "ego_pose", True, False, ("x", "y", "z", "intensity", "laser_id"), True,
            "datasets/pandaset/pandaset_sourceloader.py",
        ),
        Layout(
            "kitti", "KITTI",
            ("left_color (image_02)", "right_color (image_03)"),
            "ego_pose", False, False, ("x", "y", "z", "reflectance"), False,
            "datasets/kitti/kitti_sourceloader.py",
        ),
        Layout(
            "argoverse", "Argoverse 2",
            ("ring_front_center", "ring_front_left", "ring_front_right", "ring_side_left", "ring_side_right",
             "ring_rear_left", "ring_rear_right"),
            "ego_pose", False, False, ("x", "y", "z", "intensity"), False,
            "datasets/argoverse/argoverse_sourceloader.py",
        ),
        Layout(
            "nuplan", "nuPlan",
            ("CAM_F0", "CAM_L0", "CAM_R0", "CAM_L1", "CAM_R1", "CAM_L2", "CAM_R2", "CAM_B0"),
            "ego_pose", False, False, ("x", "y", "z", "intensity", "ring", "lidar_id"), False,
            "datasets/nuplan/nuplan_sourceloader.py",
        ),
    )
}  # fmt: skip


def get_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise SceneError(f"unknown DriveStudio layout {name!r}; known layouts: {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


# --- detection ---------------------------------------------------------------------------------


def _digit_stems(folder: Path, suffix: str) -> list[str]:
    return sorted(p.stem for p in folder.glob(f"*{suffix}") if p.stem.replace("_", "").isdigit())


def _camera_axes(root: Path, files: list[Path]) -> str | None:
    """'waymo' or 'opencv' from camera-to-ego extrinsics: the vehicle's z is up, so Waymo camera
    axes have camera z up (R[2, 2] > 0.5) and OpenCV axes camera y down (R[2, 1] < -0.5).
    Unreadable files are skipped (the reader reports them); None if no file decides."""
    votes = {}
    for path in files:
        try:
            M = np.asarray([float(tok) for tok in path.read_text().split()], dtype=np.float64)
        except (OSError, ValueError):
            continue
        if M.size not in (12, 16) or not np.isfinite(M).all():
            continue
        R = M.reshape(-1, 4)[:3, :3]
        kind = "waymo" if R[2, 2] > 0.5 else "opencv" if R[2, 1] < -0.5 else None
        if kind is not None:
            votes[path] = kind
    kinds = set(votes.values())
    if len(kinds) > 1:
        by = {k: [p.name for p, v in votes.items() if v == k] for k in kinds}
        raise SceneError(
            f"{root / 'extrinsics'}: ambiguous DriveStudio layout: extrinsics {by['waymo']} have Waymo camera axes "
            f"(camera z up) but {by['opencv']} have OpenCV axes (camera y down); pass layout=... to choose"
        )
    return kinds.pop() if kinds else None


def _lidar_is_nuplan(path: Path) -> bool | None:
    """Whether a sweep reads as nuPlan's 6 columns (ring and lidar_id small non-negative integers);
    None if the file cannot tell (missing, empty)."""
    try:
        raw = np.fromfile(path, dtype=np.float32)
    except OSError:
        return None
    if raw.size == 0:
        return None
    if raw.size % 6 != 0:
        return False
    tail = raw.reshape(-1, 6)[:, 4:6]
    return bool(np.isfinite(tail).all() and (tail >= 0).all() and (tail == np.round(tail)).all() and tail[:, 1].max() < 16)


def detect_layout(path: str | Path) -> Layout:
    """The DriveStudio layout of a processed scene folder; SceneError naming the folder and what is
    missing or ambiguous. Evidence, in order: the pose folder (`ego_pose/` or nuScenes'
    `lidar_pose/`), extrinsics per frame (`{t}_{cam}.txt`: nuScenes, PandaSet) or per camera
    (`{cam}.txt`), the camera axes of per-camera extrinsics (Waymo's or OpenCV's), then for the
    OpenCV ones the lidar columns (nuPlan's 6) and the cameras DriveStudio writes (KITTI 2, Argoverse 2 seven)."""
    root = Path(path)
    ego, lidar_pose = (root / "ego_pose").is_dir(), (root / "lidar_pose").is_dir()
    if ego and lidar_pose:
        raise SceneError(
            f"{root}: ambiguous DriveStudio layout: both ego_pose/ and lidar_pose/ exist (nuScenes writes only "
            "lidar_pose/, the other datasets only ego_pose/); remove one or pass layout=..."
        )
    if not ego and not lidar_pose:
        raise SceneError(f"{root}: not a DriveStudio scene (no ego_pose/ or lidar_pose/ folder)")
    ext_dir = root / "extrinsics"
    if not ext_dir.is_dir():
        raise SceneError(f"{ext_dir}: incomplete DriveStudio scene: the extrinsics/ folder is missing")
    stems = _digit_stems(ext_dir, ".txt")
    per_frame = [s for s in stems if "_" in s]
    per_cam = [s for s in stems if "_" not in s]
    if per_frame and per_cam:
        raise SceneError(
            f"{ext_dir}: ambiguous DriveStudio layout: both per-frame extrinsics ({per_frame[0]}.txt: nuScenes, "
            f"PandaSet) and per-camera extrinsics ({per_cam[0]}.txt: Waymo, KITTI, Argoverse 2, nuPlan)"
        )
    if not per_frame and not per_cam:
        raise SceneError(f"{ext_dir}: incomplete DriveStudio scene: no extrinsics files ({{cam}}.txt or {{t:03d}}_{{cam}}.txt)")
    if lidar_pose:
        if not per_frame:
            raise SceneError(
                f"{ext_dir}: incomplete nuScenes scene (it has lidar_pose/): nuScenes extrinsics are per frame, "
                f"extrinsics/{{t:03d}}_{{cam}}.txt, but only per-camera files like {per_cam[0]}.txt are here"
            )
        return LAYOUTS["nuscenes"]
    if per_frame:
        return LAYOUTS["pandaset"]
    axes = _camera_axes(root, [ext_dir / f"{s}.txt" for s in per_cam])
    if axes is None:
        raise SceneError(
            f"{ext_dir}: ambiguous DriveStudio layout: no camera-to-ego extrinsic shows Waymo camera axes "
            "(camera z up: Waymo) or OpenCV axes (camera y down: KITTI, Argoverse 2, nuPlan); pass layout=..."
        )
    if axes == "waymo":
        return LAYOUTS["waymo"]
    cams = {int(s) for s in _digit_stems(root / "intrinsics", ".txt") if s.isdigit()}
    sweeps = sorted((root / "lidar").glob("*.bin"))
    nuplan_lidar = _lidar_is_nuplan(sweeps[0]) if sweeps else None
    names = ("kitti", "argoverse", "nuplan")
    if nuplan_lidar is not None:
        names = ("nuplan",) if nuplan_lidar else ("kitti", "argoverse")
    fits = [n for n in names if len(LAYOUTS[n].cameras) == len(cams) and cams == set(range(len(cams)))]
    if len(fits) == 1:
        return LAYOUTS[fits[0]]
    if len(names) == 1 and cams <= set(range(len(LAYOUTS[names[0]].cameras))):
        return LAYOUTS[names[0]]
    written = ", ".join(f"{LAYOUTS[n].title} writes cameras 0-{len(LAYOUTS[n].cameras) - 1}" for n in names)
    lidar_word = {None: "no lidar sweep to tell", True: "lidar has nuPlan's 6 columns", False: "lidar has 4 columns"}
    raise SceneError(
        f"{root}: ambiguous DriveStudio layout: OpenCV camera-to-ego extrinsics and ego_pose/ fit "
        f"{' or '.join(LAYOUTS[n].title for n in names)} ({lidar_word[nuplan_lidar]}); intrinsics/ has cameras "
        f"{sorted(cams)} ({written}); pass layout='{names[0]}' (or another of {', '.join(names)})"
    )


# --- geometry ----------------------------------------------------------------------------------


def camera_to_opencv(extrinsic: np.ndarray, layout: Layout) -> np.ndarray:  # [4, 4]
    """A stored extrinsic (camera-to-ego or camera-to-world) -> the same pose with OpenCV camera axes."""
    E = np.asarray(extrinsic, dtype=np.float64)
    return E @ OPENCV_TO_WAYMO_CAM if layout.waymo_camera_axes else E


def level_vehicle_frame(pose: np.ndarray, cam0_to_world: np.ndarray, source: str) -> np.ndarray:  # [4, 4]
    """Vehicle-to-world with x forward, y left, z up: origin and z of `pose`, x = camera 0's OpenCV
    viewing direction (its z axis) made perpendicular to that z."""
    up = pose[:3, 2] / np.linalg.norm(pose[:3, 2])
    view = cam0_to_world[:3, 2]
    forward = view - (view @ up) * up
    norm = float(np.linalg.norm(forward))
    if norm < 1e-3:
        raise SceneError(f"{source}: camera 0 looks straight along the pose's z axis; cannot tell the vehicle's forward direction")
    forward = forward / norm
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2] = forward, np.cross(up, forward), up
    out[:3, 3] = pose[:3, 3]
    return out
