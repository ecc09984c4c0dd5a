"""Where are the sensors on the ego? Waymo-like cameras and the top lidar in the vehicle frame.

Vehicle frame (Waymo's): x forward, y left, z up, origin on the ground below the rear axle.
Camera ids follow Waymo/DriveStudio: 0 front, 1 front_left, 2 front_right, 3 side_left, 4 side_right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALIASES = {"left": "side_left", "right": "side_right", "0": "front", "1": "front_left", "2": "front_right", "3": "side_left", "4": "side_right"}

# DriveStudio's OPENCV2DATASET: OpenCV camera axes (x right, y down, z forward) to Waymo camera axes (x forward, y left, z up)
OPENCV_TO_WAYMO_CAM = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)

LIDAR_ORIGIN = np.array([1.4, 0.0, 2.0])  # top lidar in the vehicle frame
LIDAR_BEAMS = 64
LIDAR_INCLINATION = (-17.6, 2.4)  # degrees
LIDAR_RANGE = 75.0  # metres


@dataclass(frozen=True)
class RigCamera:
    name: str
    cam_id: int
    position: tuple[float, float, float]  # vehicle frame, metres
    yaw: float  # degrees, positive to the left
    pitch: float  # degrees, positive looking down
    hfov: float  # degrees

    def intrinsics(self, width: int, height: int) -> np.ndarray:  # [4] fx, fy, cx, cy
        f = 0.5 * width / math.tan(0.5 * math.radians(self.hfov))
        return np.array([f, f, 0.5 * width, 0.5 * height])

    def cam_to_ego(self) -> np.ndarray:  # [4, 4] OpenCV camera axes to the vehicle frame
        ya, pa = math.radians(self.yaw), math.radians(self.pitch)
        fwd = np.array([math.cos(pa) * math.cos(ya), math.cos(pa) * math.sin(ya), -math.sin(pa)])
        right = np.array([math.sin(ya), -math.cos(ya), 0.0])
        down = np.cross(fwd, right)
        T = np.eye(4)
        T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = right, down, fwd, self.position
        return T

    def waymo_extrinsic(self) -> np.ndarray:  # [4, 4] what extrinsics/{id}.txt holds
        """Camera-to-vehicle with the camera in Waymo's axes: DriveStudio's loader multiplies it by
        OPENCV2DATASET to get the OpenCV camera-to-vehicle back."""
        return self.cam_to_ego() @ OPENCV_TO_WAYMO_CAM.T


RIG = {
    "front": RigCamera("front", 0, (1.60, 0.0, 1.60), 0.0, 2.0, 50.0),
    "front_left": RigCamera("front_left", 1, (1.50, 0.30, 1.60), 45.0, 2.0, 50.0),
    "front_right": RigCamera("front_right", 2, (1.50, -0.30, 1.60), -45.0, 2.0, 50.0),
    "side_left": RigCamera("side_left", 3, (1.10, 0.90, 1.60), 90.0, 2.0, 50.0),
    "side_right": RigCamera("side_right", 4, (1.10, -0.90, 1.60), -90.0, 2.0, 50.0),
}


def rig_cameras(cameras: str | tuple[str, ...] | list[str]) -> list[RigCamera]:
    """Cameras by name ("front,front_left" or a tuple; ids and left/right aliases accepted)."""
    names = [c.strip() for c in cameras.split(",")] if isinstance(cameras, str) else [str(c).strip() for c in cameras]
    out = []
    for n in names:
        if not n:
            continue
        key = ALIASES.get(n, n)
        if key not in RIG:
            raise ValueError(f"unknown camera {n!r}: use one of {sorted(RIG)}")
        if RIG[key] not in out:
            out.append(RIG[key])
    if not out:
        raise ValueError("no cameras given")
    return out


def shift_ego(ego_to_world: np.ndarray, metres: float) -> np.ndarray:  # [4, 4]
    """The ego moved `metres` along its own left axis (positive = left); same as cameras.lane_shift_ego."""
    out = ego_to_world.copy()
    out[:3, 3] = ego_to_world[:3, 3] + metres * ego_to_world[:3, 1]
    return out


def lidar_beams(azimuths: int = 1000) -> np.ndarray:  # [64 * azimuths, 3] unit directions in the vehicle frame
    """Beam directions of the top lidar: 64 inclinations uniform in [-17.6, 2.4] degrees, `azimuths` columns."""
    inc = np.radians(np.linspace(LIDAR_INCLINATION[1], LIDAR_INCLINATION[0], LIDAR_BEAMS))  # top beam first
    az = np.pi - 2 * np.pi * (np.arange(azimuths) + 0.5) / azimuths  # Waymo's range image goes from +pi clockwise
    I, A = np.meshgrid(inc, az, indexing="ij")
    return np.stack([np.cos(I) * np.cos(A), np.cos(I) * np.sin(A), np.sin(I)], -1).reshape(-1, 3)
