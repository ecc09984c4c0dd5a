"""Where is each tracked object at each timestep? Instance tracks from DriveStudio's (and SynthStreet's) files.

`instances/instances_info.json` holds, per instance key ("0", "1", ...), its `class_name` and
`frame_annotations` = {frame_idx: [F], obj_to_world: [F x 4x4], box_size: [F x (L, W, H)]}; the box frame
has its origin at the box centre, x along the length (forward), y along the width, z up (Waymo's boxes).
`instances/frame_instances.json` lists the instance keys present in each frame. DriveStudio sizes its pose
table by the number of frames in frame_instances.json and averages box_size over an instance's frames;
an instance with no annotated frame is dropped (SynthStreet writes such vehicles, never seen).

Everything inconsistent is a `TrackError` naming the file, the instance and the frame: a pose with NaN, a
pose that is not rigid, annotation lists of different lengths, a frame id out of range, an instance id
listed in frame_instances.json without a track (or without an annotation at that frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from faithfusion.data.frame import SceneError

RIGID_CLASS_WORDS = ("vehicle", "car", "truck", "bus", "van", "trailer", "motorcycle", "construction")
"""A class name containing one of these (case-insensitive) is a rigid vehicle: Waymo's "Vehicle", nuScenes'
"vehicle.car", PandaSet's "Car", KITTI's "Van", Argoverse's "REGULAR_VEHICLE", ..."""


class TrackError(SceneError):
    """Instance tracks that are missing or inconsistent: names the file, the instance and the frame."""


@dataclass
class Track:
    """One tracked object: its box-to-scene poses at the timesteps it is annotated, and its box size."""

    key: str  # instance key in instances_info.json
    track_id: str  # the dataset's own id ("id")
    class_name: str
    timesteps: list[int]  # sorted, the frames with an annotation
    poses: Tensor  # [F, 4, 4] float32 box-to-scene
    size: Tensor  # [3] float32 (length, width, height), mean over the frames

    @property
    def rigid(self) -> bool:
        name = self.class_name.lower()
        return any(word in name for word in RIGID_CLASS_WORDS)

    def trajectory_length(self) -> float:
        """Summed distance between consecutive box centres (DriveStudio's `traj_length`)."""
        if len(self.timesteps) < 2:
            return 0.0
        return float((self.poses[1:, :3, 3] - self.poses[:-1, :3, 3]).norm(dim=-1).sum())

    def pose_at(self, timestep: int) -> Tensor | None:  # [4, 4] or None where not annotated
        try:
            return self.poses[self.timesteps.index(int(timestep))]
        except ValueError:
            return None


@dataclass
class InstanceTracks:
    tracks: dict[str, Track]
    source: Path  # instances_info.json
    num_frames: int  # frames of frame_instances.json (the range of frame ids)

    def moving_vehicles(self, min_trajectory: float = 1.0) -> list[Track]:
        """The rigid tracks that move more than `min_trajectory` (scene units) over the scene, in key order."""
        return [t for t in self.tracks.values() if t.rigid and t.trajectory_length() > min_trajectory]


def _rigid_pose(M, source: str) -> np.ndarray:  # [4, 4] float64
    try:
        T = np.asarray(M, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TrackError(f"{source}: obj_to_world is not a matrix of numbers ({e})") from e
    if T.size != 16:
        raise TrackError(f"{source}: obj_to_world must be a 4x4 matrix, got {T.size} numbers")
    T = T.reshape(4, 4)
    if not np.isfinite(T).all():
        raise TrackError(f"{source}: obj_to_world contains NaN or infinite values")
    if not np.allclose(T[3], [0, 0, 0, 1], atol=1e-3):
        raise TrackError(f"{source}: obj_to_world's last row must be [0 0 0 1], got {T[3].tolist()}")
    R = T[:3, :3]
    err = float(np.abs(R @ R.T - np.eye(3)).max())
    if err > 1e-3 or np.linalg.det(R) < 0:
        raise TrackError(f"{source}: obj_to_world is not rigid (|R R^T - I| = {err:.3g}, det {np.linalg.det(R):.3f})")
    return T


def parse_tracks(
    info: dict,
    frame_instances: dict,
    info_path: Path,
    frames_path: Path,
    timesteps: list[int] | None = None,
    to_scene: Callable[[np.ndarray], np.ndarray] | None = None,
) -> InstanceTracks:
    """Check and convert the two JSON payloads. `timesteps`: the frames kept (others are dropped, as
    DriveStudio's start/end window does); `to_scene` maps a world 4x4 pose to scene coordinates (None: the
    poses are in scene coordinates already)."""
    if not isinstance(info, dict):
        raise TrackError(f"{info_path}: expected an object of instances, got a {type(info).__name__}")
    if not isinstance(frame_instances, dict):
        raise TrackError(f"{frames_path}: expected an object of frames, got a {type(frame_instances).__name__}")
    frame_ids: dict[int, list[str]] = {}
    for key, ids in frame_instances.items():
        if not str(key).lstrip("-").isdigit():
            raise TrackError(f"{frames_path}: frame key {key!r} is not a frame number")
        if not isinstance(ids, list):
            raise TrackError(f"{frames_path}: frame {key} must list instance ids, got a {type(ids).__name__}")
        frame_ids[int(key)] = [str(i) for i in ids]
    num_frames = len(frame_instances) if frame_instances else (max(timesteps) + 1 if timesteps else 0)
    for f in frame_ids:
        if not 0 <= f < num_frames:
            raise TrackError(f"{frames_path}: frame {f} is out of range (the file lists {num_frames} frames: 0..{num_frames - 1})")
    keep = None if timesteps is None else set(int(t) for t in timesteps)

    tracks: dict[str, Track] = {}
    annotated: dict[str, set[int]] = {}
    for key, inst in info.items():
        key = str(key)
        ann = inst.get("frame_annotations") if isinstance(inst, dict) else None
        if not isinstance(ann, dict) or "frame_idx" not in ann or "obj_to_world" not in ann:
            raise TrackError(f"{info_path}: instance {key} has no frame_annotations with frame_idx and obj_to_world")
        idx, poses, sizes = ann["frame_idx"], ann["obj_to_world"], ann.get("box_size")
        if sizes is None or not (len(idx) == len(poses) == len(sizes)):
            n_sizes = "no" if sizes is None else len(sizes)
            raise TrackError(f"{info_path}: instance {key} has {len(idx)} frame_idx, {len(poses)} obj_to_world and "
                             f"{n_sizes} box_size entries; they must be one per frame")
        annotated[key] = set()
        rows = []
        for f, M, size in zip(idx, poses, sizes):
            where = f"{info_path} (instance {key}, frame {f})"
            if not isinstance(f, (int, np.integer)) or isinstance(f, bool):
                raise TrackError(f"{where}: frame_idx must be an integer")
            if not 0 <= f < num_frames:
                raise TrackError(f"{where}: frame {f} is out of range (frame_instances.json lists {num_frames} frames)")
            T = _rigid_pose(M, where)
            s = np.asarray(size, dtype=np.float64).reshape(-1)
            if s.size != 3 or not np.isfinite(s).all() or (s <= 0).any():
                raise TrackError(f"{where}: box_size must be 3 positive numbers (length, width, height), got {size}")
            annotated[key].add(int(f))
            if keep is None or int(f) in keep:
                rows.append((int(f), to_scene(T) if to_scene is not None else T, s))
        if not rows:
            continue  # never annotated in the kept frames: dropped, as DriveStudio does
        rows.sort(key=lambda r: r[0])
        tracks[key] = Track(
            key=key,
            track_id=str(inst.get("id", key)),
            class_name=str(inst.get("class_name", "")),
            timesteps=[r[0] for r in rows],
            poses=torch.from_numpy(np.stack([r[1] for r in rows])).float(),
            size=torch.from_numpy(np.mean([r[2] for r in rows], axis=0)).float(),
        )
    for f, ids in sorted(frame_ids.items()):
        for i in ids:
            if i not in annotated:
                raise TrackError(f"{frames_path}: frame {f} lists instance {i}, which {info_path.name} does not have")
            if f not in annotated[i]:
                raise TrackError(f"{frames_path}: frame {f} lists instance {i}, but {info_path.name} has no "
                                 f"obj_to_world of instance {i} at frame {f} (an instance id without that frame)")
    return InstanceTracks(tracks, info_path, num_frames)


def read_tracks(root: Path, timesteps: list[int] | None = None,
                to_scene: Callable[[np.ndarray], np.ndarray] | None = None) -> InstanceTracks:
    """The tracks of a DriveStudio-layout scene folder (poses in world coordinates unless `to_scene`)."""
    from faithfusion.utils.jsonio import read_json

    info_path = Path(root) / "instances" / "instances_info.json"
    frames_path = Path(root) / "instances" / "frame_instances.json"
    for p in (info_path, frames_path):
        if not p.is_file():
            raise TrackError(f"{p}: instance track file is missing (the scene graph needs DriveStudio's instances/ files)")
    return parse_tracks(read_json(info_path, TrackError), read_json(frames_path, TrackError), info_path, frames_path,
                        timesteps, to_scene)


def tracks_from_scene(scene) -> InstanceTracks:
    """The tracks of a DriveStudio SceneData (its reader already moved the poses to scene coordinates)."""
    root = Path(scene.source)
    info_path = root / "instances" / "instances_info.json"
    frames_path = root / "instances" / "frame_instances.json"
    if not scene.instances:
        raise TrackError(f"{info_path}: instance track file is missing (--scene-graph needs DriveStudio's "
                         "instances/instances_info.json and frame_instances.json)")
    if not frames_path.is_file():
        raise TrackError(f"{frames_path}: instance track file is missing (--scene-graph needs it next to instances_info.json)")
    timesteps = scene.extra.get("timesteps") or sorted({f.timestep for f in scene.frames})
    return parse_tracks(scene.instances["instances_info"], scene.instances["frame_instances"], info_path, frames_path,
                        list(timesteps))
