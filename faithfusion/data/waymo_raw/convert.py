"""Raw Waymo v1 `Frame` records -> DriveStudio's processed-Waymo scene folder.

What DriveStudio's `datasets/waymo/waymo_preprocess.py` writes, from the same fields, without TensorFlow:

    images/{t:03d}_{cam}.jpg       the record's JPEG bytes as they are; cam = CameraName - 1
    intrinsics/{cam}.txt           f_u f_v c_u c_v k1 k2 p1 p2 k3 (CameraCalibration.intrinsic)
    extrinsics/{cam}.txt           4x4 camera-to-vehicle, Waymo camera axes (CameraCalibration.extrinsic)
    ego_pose/{t:03d}.txt           4x4 vehicle-to-world (Frame.pose)
    lidar/{t:03d}.bin              float32 [N, 14], first returns of every lidar (see `lidar.frame_lidar`)
    instances/instances_info.json  vehicles, pedestrians, cyclists: obj_to_world = pose @ box, box_size l w h
    instances/frame_instances.json {t: [instance index]}
    dynamic_masks/{all,human,vehicle}/{t:03d}_{cam}.png   255 on labelled boxes moving > 1 m/s (`masks`)
    frame_info.json                time of day, location, weather, camera object counts (first frame)

t is the record's index in the file. Calibrations are taken by camera name (DriveStudio takes them in
record order, which is the same in the dataset's files). Not written: sky masks (DriveStudio makes them
with a segmentation model).
"""

from __future__ import annotations

import io
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from faithfusion.data.common import checked_pose
from faithfusion.data.drivestudio import write_drivestudio_calib, write_drivestudio_instances
from faithfusion.data.waymo_raw.lidar import WaymoRecordError, frame_lidar
from faithfusion.data.waymo_raw.masks import MASK_CLASSES, dynamic_mask
from faithfusion.data.waymo_raw.proto import CAMERA_NAMES, LABEL_TYPES, messages
from faithfusion.data.waymo_raw.tfrecord import read_records
from faithfusion.utils.atomic import atomic_write
from faithfusion.utils.jsonio import save_json_atomic

DYNAMIC_CLASSES = ("Vehicle", "Pedestrian", "Cyclist")
"""Label classes DriveStudio keeps as instances."""
_SCENE_FOLDERS = ("images", "intrinsics", "extrinsics", "ego_pose", "lidar", "instances", "sky_masks", "dynamic_masks")
_OBJECT_COUNT_NAMES = {0: "TYPE_UNKNOWN", 1: "TYPE_VEHICLE", 2: "TYPE_PEDESTRIAN", 3: "TYPE_SIGN", 4: "TYPE_CYCLIST"}


@dataclass
class ConvertSummary:
    out: Path
    frames: int
    context: str
    cameras: dict[int, str]
    """DriveStudio camera id -> Waymo camera name."""
    image_sizes: dict[int, tuple[int, int]]
    """Camera id -> (width, height) of its JPEG."""
    lidar_points: list[int] = field(default_factory=list)
    """Points per frame (empty: the records hold no range images)."""
    instances: int = 0
    seconds: float = 0.0
    calibration: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    """Camera id -> (intrinsic [9], extrinsic [4, 4]) as written."""


def _matrix(values, source: str) -> np.ndarray:  # [4, 4]
    values = np.asarray(values, dtype=np.float64)
    if values.size != 16:
        raise WaymoRecordError(f"{source}: a transform must be 16 numbers (4x4 row-major), got {values.size}")
    return checked_pose(values.reshape(4, 4), source=source)


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise WaymoRecordError(f"{out}: the output exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise WaymoRecordError(f"{out}: the output folder is not empty (pass --overwrite to replace a converted scene)")
        if not (out / "ego_pose").is_dir():
            raise WaymoRecordError(f"{out}: --overwrite replaces a DriveStudio scene only, and this folder has no ego_pose/")
        for name in _SCENE_FOLDERS:
            shutil.rmtree(out / name, ignore_errors=True)
        (out / "frame_info.json").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _frame_info(frame) -> dict:
    stats = frame.context.stats
    info = {"time_of_day": stats.time_of_day, "location": stats.location, "weather": stats.weather}
    info.update({_OBJECT_COUNT_NAMES.get(c.type, str(c.type)): c.count for c in stats.camera_object_counts})
    return info


def _write_calibration(out: Path, frame, source: str) -> tuple[dict[int, str], dict[int, tuple[int, int]], dict]:
    intrinsics, extrinsics, names, sizes = {}, {}, {}, {}
    for calib in frame.context.camera_calibrations:
        where = f"{source}, camera {CAMERA_NAMES.get(calib.name, calib.name)}"
        if calib.name < 1:
            raise WaymoRecordError(f"{where}: camera calibration without a camera name")
        if len(calib.intrinsic) != 9:
            raise WaymoRecordError(f"{where}: intrinsic must be 9 numbers (f_u f_v c_u c_v k1 k2 p1 p2 k3), got {len(calib.intrinsic)}")
        cam = calib.name - 1
        intrinsics[cam] = np.asarray(calib.intrinsic, dtype=np.float64)
        extrinsics[cam] = _matrix(calib.extrinsic.transform, f"{where} extrinsic")
        names[cam] = CAMERA_NAMES.get(calib.name, str(calib.name))
        sizes[cam] = (int(calib.width), int(calib.height))
    if not intrinsics:
        raise WaymoRecordError(f"{source}: the first frame has no camera calibrations (Frame.context.camera_calibrations)")
    write_drivestudio_calib(out, intrinsics, extrinsics)
    return names, sizes, {cam: (intrinsics[cam], extrinsics[cam]) for cam in intrinsics}


def _write_dynamic_masks(out: Path, frame, t: int, summary: "ConvertSummary") -> None:
    for image in frame.images:
        cam = image.name - 1
        K, E = summary.calibration[cam]
        w, h = summary.image_sizes[cam]
        for group in MASK_CLASSES:
            mask = (dynamic_mask(frame.laser_labels, K, E, w, h, group) * 255).astype(np.uint8)
            atomic_write(out / "dynamic_masks" / group / f"{t:03d}_{cam}.png",
                         save=lambda tmp: Image.fromarray(mask, "L").save(tmp, format="PNG"), what="dynamic mask")


def _write_images(out: Path, frame, t: int, sizes: dict[int, tuple[int, int]], source: str) -> None:
    seen = set()
    for image in frame.images:
        cam = image.name - 1
        where = f"{source}, camera {CAMERA_NAMES.get(image.name, image.name)}"
        if cam not in sizes:
            raise WaymoRecordError(f"{where}: image of a camera without calibration")
        try:
            with Image.open(io.BytesIO(image.image)) as im:
                fmt, size = im.format, im.size
        except Exception as e:
            raise WaymoRecordError(f"{where}: the image is not a readable JPEG ({e})") from e
        if fmt != "JPEG" or size != sizes[cam]:
            raise WaymoRecordError(f"{where}: expected a {sizes[cam][0]}x{sizes[cam][1]} JPEG (its calibration), got {fmt} {size[0]}x{size[1]}")
        atomic_write(out / "images" / f"{t:03d}_{cam}.jpg", image.image, what="image")
        seen.add(cam)
    missing = sorted(set(sizes) - seen)
    if missing:
        raise WaymoRecordError(f"{source}: no image of calibrated camera(s) {[CAMERA_NAMES.get(c + 1, c + 1) for c in missing]}")


def _add_instances(frame, t: int, pose: np.ndarray, info: dict, frame_instances: dict) -> None:
    """DriveStudio's `save_objects` for one frame: upright boxes to object-to-world matrices."""
    frame_instances[t] = []
    for label in frame.laser_labels:
        class_name = LABEL_TYPES.get(label.type, "unknown")
        if class_name not in DYNAMIC_CLASSES:
            continue
        box = label.box
        c, s = np.cos(box.heading), np.sin(box.heading)
        obj_to_vehicle = np.array([[c, -s, 0, box.center_x], [s, c, 0, box.center_y], [0, 0, 1, box.center_z], [0, 0, 0, 1]])
        entry = info.setdefault(label.id, {"id": label.id, "class_name": class_name,
                                           "frame_annotations": {"frame_idx": [], "obj_to_world": [], "box_size": []}})
        ann = entry["frame_annotations"]
        ann["frame_idx"].append(t)
        ann["obj_to_world"].append((pose @ obj_to_vehicle).tolist())
        ann["box_size"].append([box.length, box.width, box.height])
        frame_instances[t].append(label.id)


def convert_waymo(
    tfrecord: str | Path,
    out: str | Path,
    max_frames: int = 0,
    lidar: bool = True,
    instances: bool = True,
    dynamic_masks: bool = True,
    overwrite: bool = False,
    log: Callable[[str], None] | None = print,
) -> ConvertSummary:
    """Convert the frames of one Waymo v1 TFRecord file (one driving segment) into a DriveStudio scene folder.

    `max_frames` > 0 stops after that many records. Lidar is written when the records hold range
    images (all frames or none); labels become instance tracks and dynamic masks. Raises a UserError naming the file,
    the record index and the problem for bad input (corrupt framing, CRC mismatch, not a Frame, ...).
    """
    start = time.perf_counter()
    tfrecord, out = Path(tfrecord), Path(out)
    if max_frames < 0:
        raise WaymoRecordError(f"--max-frames must be >= 0 (0 = all), got {max_frames}")
    M = messages()
    _prepare_out(out, overwrite)
    summary: ConvertSummary | None = None
    with_lidar: bool | None = None
    info: dict[str, dict] = {}
    frame_instances: dict[int, list[str]] = {}
    for index, payload in read_records(tfrecord):
        if max_frames and index >= max_frames:
            break
        source = f"{tfrecord}: record {index}"
        try:
            frame = M.Frame.FromString(payload)
        except Exception as e:  # protobuf's DecodeError
            raise WaymoRecordError(f"{source} is not a Waymo Frame protobuf ({e})") from e
        if summary is None:
            if not frame.context.name:
                raise WaymoRecordError(f"{source}: no context name: not a Waymo Open Dataset Frame")
            names, sizes, calibration = _write_calibration(out, frame, source)
            save_json_atomic(out / "frame_info.json", _frame_info(frame))
            summary = ConvertSummary(out, 0, frame.context.name, names, sizes, calibration=calibration)
        elif frame.context.name != summary.context:
            raise WaymoRecordError(f"{source}: segment {frame.context.name!r} differs from the file's first segment "
                                   f"{summary.context!r}; convert one segment per scene folder")
        pose = _matrix(frame.pose.transform, f"{source} Frame.pose")
        _write_images(out, frame, index, summary.image_sizes, source)
        if lidar:
            cloud = frame_lidar(frame, source)
            if with_lidar is None:
                with_lidar = cloud is not None
            elif with_lidar != (cloud is not None):
                raise WaymoRecordError(f"{source}: {'has' if cloud is not None else 'lacks'} range images, unlike record 0; "
                                       "the scene needs lidar in every frame or none (--no-lidar skips it)")
            if cloud is not None:
                atomic_write(out / "lidar" / f"{index:03d}.bin", save=lambda tmp: cloud.tofile(tmp), what="lidar")
                summary.lidar_points.append(len(cloud))
        if instances:
            _add_instances(frame, index, pose, info, frame_instances)
        if dynamic_masks:
            _write_dynamic_masks(out, frame, index, summary)
        # the ego pose last: a reader lists timesteps by their ego pose, so a timestep appears complete
        atomic_write(out / "ego_pose" / f"{index:03d}.txt", save=lambda tmp: np.savetxt(tmp, pose), what="ego pose")
        summary.frames += 1
        if log:
            n_points = f", {summary.lidar_points[-1]} lidar points" if summary.lidar_points and with_lidar else ""
            log(f"frame {index}: {len(frame.images)} images{n_points}, {len(frame.laser_labels)} labels")
    if summary is None:
        raise WaymoRecordError(f"{tfrecord}: no records in the file")
    if instances:
        # DriveStudio re-keys instances by their order of first appearance
        order = {key: i for i, key in enumerate(info)}
        write_drivestudio_instances(
            out,
            {str(order[k]): v for k, v in info.items()},
            {str(t): [order[k] for k in ids] for t, ids in frame_instances.items()},
        )
        summary.instances = len(info)
    summary.seconds = time.perf_counter() - start
    return summary
