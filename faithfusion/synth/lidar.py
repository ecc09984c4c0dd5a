"""What does the top lidar measure? Exact returns of the 64-beam pattern, from rasterized id maps.

The scene is rasterized into four 90-degree faces around the lidar (only the rows the beams
need). Each beam looks up the triangles seen in the 3 x 3 pixels around its direction and is
intersected exactly with them (nearest hit wins), so every point lies on a surface, on the
beam's own ray. A beam whose triangle covers no nearby pixel centre (a sub-pixel sliver) is lost,
as a real lidar loses some returns. Output rows follow DriveStudio's 14 columns, points in the
vehicle frame.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from faithfusion.synth import materials as M
from faithfusion.synth.raster import NEAR, raster, ray_triangle
from faithfusion.synth.render import SceneArrays
from faithfusion.synth.rig import LIDAR_INCLINATION, LIDAR_ORIGIN, LIDAR_RANGE, lidar_beams
from faithfusion.synth.shading import road_albedo

FACE_WIDTH = 1024


def _face_rotations() -> np.ndarray:  # [4, 3, 3] OpenCV-camera-to-vehicle rotations of the faces
    out = []
    for k in range(4):
        a = k * np.pi / 2
        fwd = np.array([np.cos(a), np.sin(a), 0.0])
        right = np.array([np.sin(a), -np.cos(a), 0.0])
        down = np.cross(fwd, right)
        out.append(np.stack([right, down, fwd], 1))
    return np.stack(out)


FACES = _face_rotations()


def _face_geometry(width: int) -> tuple[float, float, int]:
    """Focal length, cy and height of a face that holds every beam (|azimuth| <= 45 degrees)."""
    f = width / 2.0
    top = math.tan(math.radians(LIDAR_INCLINATION[1])) * math.sqrt(2) + 0.01
    bottom = math.tan(math.radians(-LIDAR_INCLINATION[0])) * math.sqrt(2) + 0.01
    return f, top * f, int(math.ceil((top + bottom) * f))


@njit(parallel=True, cache=True)
def _raster_faces(tri_v, Rs, ts, f, cy, qbuf, tbuf, nbuf):
    for k in prange(Rs.shape[0]):
        raster(tri_v, Rs[k], ts[k], f, f, qbuf.shape[2] / 2.0, cy, NEAR, qbuf[k], tbuf[k], nbuf[k], True)


@njit(parallel=True, cache=True)
def _cast(dirs, O, Rc, f, cy, tbuf, tri_v, max_range, hit_t, hit_tid, hit_b):
    """For every beam (world unit direction), the nearest exact hit among the triangles of the 3x3
    face pixels around it. Rc [4, 3, 3] world-to-face rotations."""
    H, W = tbuf.shape[1], tbuf.shape[2]
    for n in prange(dirs.shape[0]):
        dx, dy, dz = dirs[n, 0], dirs[n, 1], dirs[n, 2]
        best = -1.0
        btid = -1
        b1 = 0.0
        b2 = 0.0
        # the face whose axis is closest to the beam
        face = 0
        bestc = -1e9
        for k in range(4):
            c = Rc[k, 2, 0] * dx + Rc[k, 2, 1] * dy + Rc[k, 2, 2] * dz
            if c > bestc:
                bestc = c
                face = k
        x = Rc[face, 0, 0] * dx + Rc[face, 0, 1] * dy + Rc[face, 0, 2] * dz
        y = Rc[face, 1, 0] * dx + Rc[face, 1, 1] * dy + Rc[face, 1, 2] * dz
        u = f * x / bestc + W / 2.0
        v = f * y / bestc + cy
        i0 = int(math.floor(u))
        j0 = int(math.floor(v))
        for dj in range(-1, 2):
            for di in range(-1, 2):
                i = i0 + di
                j = j0 + dj
                if i < 0 or j < 0 or i >= W or j >= H:
                    continue
                tid = tbuf[face, j, i]
                if tid < 0:
                    continue
                t, c1, c2 = ray_triangle(tri_v, tid, O[0], O[1], O[2], dx, dy, dz)
                if t > 0.0 and (best < 0.0 or t < best):
                    best, btid, b1, b2 = t, tid, c1, c2
        if best > 0.0 and best <= max_range:
            hit_t[n] = best
            hit_tid[n] = btid
            hit_b[n, 0] = b1
            hit_b[n, 1] = b2
        else:
            hit_t[n] = -1.0
            hit_tid[n] = -1


@njit(cache=True)
def _paint(s, l, road_p, noise):  # [R] lane-paint coverage at road points
    out = np.empty(s.shape[0])
    for k in range(s.shape[0]):
        out[k] = road_albedo(s[k], l[k], 0.02, 0.02, road_p, noise)[3]
    return out


def lidar_scan(
    scene: SceneArrays,
    ego_to_world: np.ndarray,
    obj_cls: np.ndarray,
    obj_vel: np.ndarray,
    azimuths: int = 1000,
    max_range: float = LIDAR_RANGE,
) -> tuple[np.ndarray, np.ndarray]:
    """One sweep: ([M, 14] float32 DriveStudio rows in the vehicle frame, [M] hit object index).

    obj_cls [O]: flow class per object (0 background, 1 vehicle); obj_vel [O, 3]: world velocity (m/s)."""
    E = np.asarray(ego_to_world, np.float64)
    Rv, tv = E[:3, :3], E[:3, 3]
    O = Rv @ LIDAR_ORIGIN + tv
    f, cy, H = _face_geometry(FACE_WIDTH)
    Rf = np.einsum("ij,kjl->kil", Rv, FACES)  # [4, 3, 3] face-to-world
    Rc = np.ascontiguousarray(np.transpose(Rf, (0, 2, 1)))  # world-to-face
    ts = np.ascontiguousarray(-np.einsum("kij,j->ki", Rc, O))
    zbuf = np.empty((4, H, FACE_WIDTH))
    tbuf = np.empty((4, H, FACE_WIDTH), np.int32)
    bbuf = np.empty((4, H, FACE_WIDTH, 2), np.float32)
    _raster_faces(scene.tri_v, Rc, ts, f, cy, zbuf, tbuf, bbuf)
    beams = lidar_beams(azimuths)  # [N, 3] vehicle frame
    dirs = np.ascontiguousarray(beams @ Rv.T)
    N = len(dirs)
    hit_t = np.empty(N)
    hit_tid = np.empty(N, np.int64)
    hit_b = np.zeros((N, 2))
    _cast(dirs, O, Rc, f, cy, tbuf, scene.tri_v, float(max_range), hit_t, hit_tid, hit_b)
    ok = hit_t > 0
    t, tid, bary = hit_t[ok], hit_tid[ok], hit_b[ok]
    pts_v = LIDAR_ORIGIN + beams[ok] * t[:, None]  # [M, 3] vehicle frame, exactly on the beam
    obj = scene.tri_obj[tid]
    mat = scene.tri_mat[tid]
    intensity = M.INTENSITY[mat].astype(np.float64)
    road = np.where(mat == M.ROAD)[0]
    if len(road):
        b0 = 1.0 - bary[road, 0] - bary[road, 1]
        uv = scene.tri_uv[tid[road]].astype(np.float64)  # [R, 3, 2]
        s = b0 * uv[:, 0, 0] + bary[road, 0] * uv[:, 1, 0] + bary[road, 1] * uv[:, 2, 0]
        l = b0 * uv[:, 0, 1] + bary[road, 0] * uv[:, 1, 1] + bary[road, 1] * uv[:, 2, 1]
        paint = _paint(s, l, scene.road_p, scene.noise)
        intensity[road] += 0.6 * paint  # retro-reflective lane paint
    ground = np.isin(mat, M.GROUND_MATERIALS)
    flow = obj_vel[obj] @ Rv  # world velocity in the vehicle frame ([M, 3] = v_world @ R)
    out = np.zeros((len(t), 14), np.float32)
    out[:, 0:3] = LIDAR_ORIGIN
    out[:, 3:6] = pts_v
    out[:, 6:9] = flow
    out[:, 9] = obj_cls[obj]
    out[:, 10] = ground
    out[:, 11] = intensity
    out[:, 12] = 0.0
    out[:, 13] = 0.0  # laser id 0: TOP
    return out, obj
