"""`faithfusion convert NAME`: raw dataset files into a layout the readers load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faithfusion.data.waymo_raw import ConvertSummary, convert_waymo


@dataclass
class ConvertWaymoConfig:
    """Raw Waymo Open Dataset v1 frames (a TFRecord file of `Frame` records) into DriveStudio's processed-Waymo
    layout (images, calibrations, ego poses, lidar points, instance tracks), without TensorFlow."""

    tfrecord: Path
    """One segment's .tfrecord file."""
    out: Path
    """The scene folder to write (`faithfusion recon --data OUT` reads it)."""
    max_frames: int = 0
    """Convert at most this many records (0 = all)."""
    lidar: bool = True
    """Write lidar/{t}.bin from the range images (--no-lidar: skip; camera-only records have none)."""
    instances: bool = True
    """Write instances/ from the 3D labels of vehicles, pedestrians and cyclists."""
    dynamic_masks: bool = True
    """Write dynamic_masks/{all,human,vehicle}/ from the labelled boxes moving faster than 1 m/s."""
    overwrite: bool = False
    """Replace a converted scene already in OUT."""


def run_convert_waymo(cfg: ConvertWaymoConfig) -> ConvertSummary:
    s = convert_waymo(cfg.tfrecord, cfg.out, max_frames=cfg.max_frames, lidar=cfg.lidar, instances=cfg.instances,
                      dynamic_masks=cfg.dynamic_masks, overwrite=cfg.overwrite)
    cams = ", ".join(f"{cam} {name} {s.image_sizes[cam][0]}x{s.image_sizes[cam][1]}" for cam, name in s.cameras.items())
    lidar = f"{sum(s.lidar_points)} lidar points" if s.lidar_points else "no lidar (no range images in the records)"
    print(f"done: segment {s.context}, {s.frames} frames, cameras [{cams}], {lidar}, {s.instances} instances, "
          f"{s.seconds:.1f} s  ->  {s.out}")
    return s


def convert_commands() -> dict[str, tuple[type, object, str]]:
    """`faithfusion convert NAME` -> (config class, the function that runs it, one-line description)."""
    return {
        "waymo": (ConvertWaymoConfig, run_convert_waymo, "raw Waymo v1 TFRecord frames into the DriveStudio layout"),
    }
