"""Waymo range images -> lidar points in the vehicle frame, as DriveStudio stores them.

The math follows Waymo's `range_image_utils` (documented in `dataset.proto`):

- A range image is [H, W, 4]: range (metres; <= 0 is no return), intensity, elongation, no-label-zone.
- Row i has the inclination `beam_inclinations` reversed (row 0 is the highest beam); without
  per-beam values the inclinations are uniform: `min + (k + 0.5) / H * (max - min)`, k = 0..H-1, reversed.
- Column j has the azimuth `pi - (2 j + 1) pi / W - atan2(E[1, 0], E[0, 0])` in the lidar frame (the
  middle of the image looks along the vehicle's +x when the lidar is mounted facing forward).
- Sensor point = range * (cos az cos inc, sin az cos inc, sin inc); vehicle point = E @ point (E the
  lidar-to-vehicle extrinsic).
- The TOP lidar's raw range image carries a per-pixel vehicle pose ([H, W, 6]: roll, pitch, yaw, x,
  y, z, vehicle-to-world, R = Rz(yaw) Ry(pitch) Rx(roll)) for motion compensation: each point goes to
  the world with its pixel's pose and back into the vehicle frame of the Frame pose.
"""

from __future__ import annotations

import zlib

import numpy as np

from faithfusion.data.waymo_raw.proto import LASER_NAMES, messages
from faithfusion.errors import UserError


class WaymoRecordError(UserError, ValueError):
    """A Waymo record whose content is not what the dataset's schema promises."""


def decode_matrix(blob: bytes, kind: str, channels: int, source: str) -> np.ndarray:  # [H, W, channels]
    """A zlib-compressed serialized MatrixFloat / MatrixInt32 ('float' | 'int32') as an array."""
    try:
        raw = zlib.decompress(blob)
    except zlib.error as e:
        raise WaymoRecordError(f"{source}: not zlib-compressed data ({e})") from e
    M = messages()
    cls = M.MatrixFloat if kind == "float" else M.MatrixInt32
    try:
        msg = cls.FromString(raw)
    except Exception as e:  # protobuf's DecodeError
        raise WaymoRecordError(f"{source}: not a serialized Matrix{kind.capitalize()} ({e})") from e
    dims = list(msg.shape.dims)
    data = np.asarray(msg.data, dtype=np.float32 if kind == "float" else np.int32)
    if len(dims) != 3 or dims[2] != channels or int(np.prod(dims)) != data.size:
        raise WaymoRecordError(f"{source}: expected an [H, W, {channels}] matrix, got dims {dims} with {data.size} values")
    return data.reshape(dims)


def row_inclinations(beam_inclinations, inclination_min: float, inclination_max: float, height: int) -> np.ndarray:  # [H]
    """Inclination (radians) of each range-image row, row 0 first (the highest beam)."""
    beams = np.asarray(beam_inclinations, dtype=np.float64)
    if beams.size == 0:
        beams = inclination_min + (np.arange(height) + 0.5) / height * (inclination_max - inclination_min)
    if beams.size != height:
        raise ValueError(f"{beams.size} beam inclinations for a range image of {height} rows")
    return beams[::-1].copy()


def column_azimuths(width: int, extrinsic: np.ndarray) -> np.ndarray:  # [W]
    """Azimuth (radians, lidar frame) of each range-image column."""
    az_correction = np.arctan2(extrinsic[1, 0], extrinsic[0, 0])
    ratios = (np.arange(width, 0, -1, dtype=np.float64) - 0.5) / width
    return (ratios * 2.0 - 1.0) * np.pi - az_correction


def rpy_to_rotation(roll: np.ndarray, pitch: np.ndarray, yaw: np.ndarray) -> np.ndarray:  # [..., 3, 3]
    """Rz(yaw) @ Ry(pitch) @ Rx(roll), elementwise."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    R = np.empty(np.shape(roll) + (3, 3))
    R[..., 0, 0], R[..., 0, 1], R[..., 0, 2] = cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr
    R[..., 1, 0], R[..., 1, 1], R[..., 1, 2] = sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr
    R[..., 2, 0], R[..., 2, 1], R[..., 2, 2] = -sp, cp * sr, cp * cr
    return R


def range_image_to_points(
    ranges: np.ndarray,  # [H, W] metres
    extrinsic: np.ndarray,  # [4, 4] lidar -> vehicle
    inclinations: np.ndarray,  # [H] row order (row 0 = highest)
    pixel_pose: np.ndarray | None = None,  # [H, W, 6] roll pitch yaw x y z (vehicle -> world per pixel)
    frame_pose: np.ndarray | None = None,  # [4, 4] vehicle -> world of the frame
) -> tuple[np.ndarray, np.ndarray]:  # points [H, W, 3], origins [H, W, 3], vehicle frame of the frame pose
    """Every pixel's point and the lidar origin it was seen from, in the vehicle frame (float64)."""
    H, W = ranges.shape
    E = np.asarray(extrinsic, dtype=np.float64)
    az = column_azimuths(W, E)[None, :]  # [1, W]
    inc = np.asarray(inclinations, dtype=np.float64)[:, None]  # [H, 1]
    r = ranges.astype(np.float64)
    sensor = np.stack([np.cos(az) * np.cos(inc) * r, np.sin(az) * np.cos(inc) * r, np.sin(inc) * r], axis=-1)
    points = sensor @ E[:3, :3].T + E[:3, 3]  # [H, W, 3]
    origins = np.broadcast_to(E[:3, 3], points.shape).copy()  # [H, W, 3]
    if pixel_pose is not None:
        if frame_pose is None:
            raise ValueError("frame_pose is needed with pixel_pose")
        R = rpy_to_rotation(pixel_pose[..., 0], pixel_pose[..., 1], pixel_pose[..., 2])  # [H, W, 3, 3]
        t = pixel_pose[..., 3:6].astype(np.float64)  # [H, W, 3]
        Fp = np.asarray(frame_pose, dtype=np.float64)
        R_inv, t_inv = Fp[:3, :3].T, -Fp[:3, :3].T @ Fp[:3, 3]
        for x in (points, origins):
            world = np.einsum("hwij,hwj->hwi", R, x) + t
            x[...] = world @ R_inv.T + t_inv
    return points, origins


def ground_mask(points: np.ndarray, seed_height: float = 1.2, n_lowest: int = 20, iterations: int = 10,
                distance: float = 0.3) -> np.ndarray:  # [N] bool
    """Points within `distance` of a plane fitted to the ground (iterative least squares from the lowest points).

    The plane starts from the points less than `seed_height` above the mean of the `n_lowest` lowest,
    and is refitted `iterations` times to the points within `distance` of it (below counts as ground).
    """
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 3:
        return np.zeros(len(pts), dtype=bool)
    z = pts[:, 2]
    base = np.sort(z)[: min(n_lowest, len(z))].mean()
    inliers = pts[z < base + seed_height]
    below = np.zeros(len(pts), dtype=bool)
    for _ in range(iterations):
        if len(inliers) < 3:
            break
        mean = inliers.mean(axis=0)
        _, _, Vt = np.linalg.svd(inliers - mean, full_matrices=False)
        normal = Vt[-1] if Vt[-1, 2] >= 0 else -Vt[-1]  # [3] pointing up
        below = (pts - mean) @ normal < distance
        inliers = pts[below]
    return below


def frame_lidar(frame, source: str) -> np.ndarray | None:  # [N, 14] float32 or None
    """The first-return points of every lidar of a Frame, as DriveStudio's lidar/{t}.bin rows.

    Columns: origin xyz, point xyz (vehicle frame of the Frame pose), flow vx vy vz and flow class
    (0 0 0 -1 without flow), ground flag, intensity, elongation, laser id (LaserName - 1). None when
    the frame holds no range image (a camera-only record).
    """
    lasers = {laser.name: laser for laser in frame.lasers if laser.ri_return1.range_image_compressed}
    if not lasers:
        return None
    frame_pose = np.asarray(frame.pose.transform, dtype=np.float64).reshape(4, 4)
    calibs = {c.name: c for c in frame.context.laser_calibrations}
    rows = []
    for name in sorted(lasers):
        where = f"{source}, laser {LASER_NAMES.get(name, name)}"
        if name not in calibs:
            raise WaymoRecordError(f"{where}: range image without a laser calibration")
        calib, ri = calibs[name], lasers[name].ri_return1
        image = decode_matrix(ri.range_image_compressed, "float", 4, f"{where} range image")  # [H, W, 4]
        H, W, _ = image.shape
        extrinsic = np.asarray(calib.extrinsic.transform, dtype=np.float64)
        if extrinsic.size != 16:
            raise WaymoRecordError(f"{where}: laser extrinsic must be 16 numbers, got {extrinsic.size}")
        extrinsic = extrinsic.reshape(4, 4)
        try:
            inclinations = row_inclinations(calib.beam_inclinations, calib.beam_inclination_min, calib.beam_inclination_max, H)
        except ValueError as e:
            raise WaymoRecordError(f"{where}: {e}") from e
        pixel_pose = None
        if ri.range_image_pose_compressed:
            pixel_pose = decode_matrix(ri.range_image_pose_compressed, "float", 6, f"{where} range image pose")
            if pixel_pose.shape[:2] != (H, W):
                raise WaymoRecordError(f"{where}: range image pose is {pixel_pose.shape[:2]}, the range image {(H, W)}")
        points, origins = range_image_to_points(image[..., 0], extrinsic, inclinations, pixel_pose, frame_pose)
        if ri.range_image_flow_compressed:
            flow = decode_matrix(ri.range_image_flow_compressed, "float", 4, f"{where} range image flow")
        else:
            flow = np.zeros((H, W, 4), dtype=np.float32)
            flow[..., 3] = -1.0  # DriveStudio's "no flow label"
        valid = image[..., 0] > 0  # [H, W]
        n = int(valid.sum())
        block = np.zeros((n, 14), dtype=np.float64)
        block[:, 0:3], block[:, 3:6], block[:, 6:10] = origins[valid], points[valid], flow[valid]
        block[:, 11], block[:, 12], block[:, 13] = image[..., 1][valid], image[..., 2][valid], name - 1
        rows.append(block)
    cloud = np.concatenate(rows)
    cloud[:, 10] = ground_mask(cloud[:, 3:6])
    return cloud.astype(np.float32)
