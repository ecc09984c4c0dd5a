"""Which pixels of a view show surface that no training camera observed? SynthStreet's `unobserved` and
`disoccluded` ground truth.

Training cameras: the recorded (0 m) cameras at every frame. For a pixel of an evaluated view (any
shift, any frame) the surface point seen at its centre is unprojected with the view's exact depth; a
point on a vehicle is carried with that vehicle to every other frame (object frame: the vehicle's
pose at the view's frame, then at the training frame); the static world stays where it is. The point
is *seen* by a training view when it projects in front of the camera's near plane, inside the image,
and passes the depth test there:

    |z_point - z_surface| <= REL_TOL * z_point + ABS_TOL        (camera-axis depths, metres)

where z_surface is the training view's surface depth at the projected position, taken from the
training depth map (exact at pixel centres) as any of: the centre of the pixel the point falls in, the
linear interpolation of inverse depth along that centre's row or column between the two centres that
bracket the point, or the bilinear interpolation of inverse depth over the four surrounding centres.
Inverse depth is affine in the image over a plane, so the interpolations are exact inside a flat
triangle (the road seen at a grazing angle changes by metres from one pixel to the next: the pixel's
own depth alone would fail there), and an occlusion edge between two centres is placed where the
training image itself places it: the point belongs to the pixel it falls in.

    unobserved   = a surface pixel (not sky) seen by no training view
    disoccluded  = unobserved, and in at least one training view the point is inside the frustum with a
                   surface in front of it (the pixel it falls in shows a surface nearer than z_point - tolerance):
                   hidden behind something rather than outside every training frustum or facing away
                   from every training camera
    sky pixels   = neither (nothing at finite depth to observe)

Tolerance: REL_TOL = 1 % + ABS_TOL = 2 cm. The depths are exact (float32 from the rasterizer, the
interpolations exact on planes), so the tolerance only absorbs float error, the chord of curved
(triangulated) surfaces across one pixel and the creases where two planes meet between pixel
centres; it stays well below the depth gap at any occlusion (a car is metres in front of what it
hides; the thinnest occluders, poles and sign plates, stand decimetres off the wall behind them).

Cost: per pixel the training views are visited nearest first (same frame, same camera; then
outwards in time) and the search stops at the first view that sees the point; a pixel no one saw
tests all of them (the frustum test first, which rejects most). Measured in docs/synth/README.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from faithfusion.synth.raster import NEAR, raster

REL_TOL = 0.01  # relative depth tolerance of the visibility test
ABS_TOL = 0.02  # metres, added to it


@dataclass
class TrainingViews:
    """The recorded cameras at every frame: what the depth test compares against."""

    depth: np.ndarray  # [V, H, W] float32 camera-axis depth, 0 = sky
    world_to_cam: np.ndarray  # [V, 4, 4] OpenCV axes
    K: np.ndarray  # [V, 4] fx, fy, cx, cy
    frame: np.ndarray  # [V] int64 timestep of each view
    cam: np.ndarray  # [V] int64 camera id of each view


@njit(parallel=True, cache=True)
def _depth_batch(tri_v, Rs, ts, Ks, depth):
    """Depth at the pixel centres of views in parallel (the renderer's 1x raster, so the same values)."""
    V, H, W = depth.shape
    for k in prange(V):
        q = np.empty((H, W))
        tb = np.empty((H, W), np.int32)
        nb = np.empty((H, W, 2), np.float32)
        raster(tri_v, Rs[k], ts[k], Ks[k, 0], Ks[k, 1], Ks[k, 2], Ks[k, 3], NEAR, q, tb, nb, True)
        for j in range(H):
            for i in range(W):
                depth[k, j, i] = np.float32(1.0 / q[j, i]) if tb[j, i] >= 0 else np.float32(0.0)


def depth_maps(tri_v: np.ndarray, world_to_cams: np.ndarray, Ks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Camera-axis depth [V, H, W] float32 (0 = sky) of triangles `tri_v [T, 3, 3]` seen by `world_to_cams [V, 4, 4]`."""
    depth = np.zeros((len(world_to_cams), height, width), np.float32)
    Rs = np.ascontiguousarray(world_to_cams[:, :3, :3], dtype=np.float64)
    ts = np.ascontiguousarray(world_to_cams[:, :3, 3], dtype=np.float64)
    _depth_batch(np.ascontiguousarray(tri_v, dtype=np.float64), Rs, ts, np.ascontiguousarray(Ks, dtype=np.float64), depth)
    return depth


@njit(cache=True)
def _depth_test(D, px, py, zp, rel, abs_):
    """Training depth map D [H, W] at image position (px, py) against a point at depth zp:
    1 = seen (a surface within tolerance), -1 = hidden (a surface in front), 0 = neither."""
    H, W = D.shape
    a = px - 0.5
    b = py - 0.5
    i0 = int(math.floor(a))
    j0 = int(math.floor(b))
    fa = a - i0
    fb = b - j0
    i1 = min(max(i0 + 1, 0), W - 1)
    j1 = min(max(j0 + 1, 0), H - 1)
    i0 = min(max(i0, 0), W - 1)
    j0 = min(max(j0, 0), H - 1)
    d00, d01, d10, d11 = D[j0, i0], D[j0, i1], D[j1, i0], D[j1, i1]  # d{row}{column}
    # the pixel it falls in, and the row and column of that pixel's centre
    ra, rb = (d00, d01) if fb < 0.5 else (d10, d11)  # along the nearest row
    ca, cb = (d00, d10) if fa < 0.5 else (d01, d11)  # along the nearest column
    dn = ra if fa < 0.5 else rb
    tol = rel * zp + abs_
    if dn > 0 and abs(zp - dn) <= tol:
        return 1
    # inverse depth interpolated along the nearest row, along the nearest column, and over all four
    if ra > 0 and rb > 0 and abs(zp - 1.0 / ((1 - fa) / ra + fa / rb)) <= tol:
        return 1
    if ca > 0 and cb > 0 and abs(zp - 1.0 / ((1 - fb) / ca + fb / cb)) <= tol:
        return 1
    if d00 > 0 and d01 > 0 and d10 > 0 and d11 > 0:
        q = (1 - fb) * ((1 - fa) / d00 + fa / d01) + fb * ((1 - fa) / d10 + fa / d11)
        if abs(zp - 1.0 / q) <= tol:
            return 1
    if 0 < dn < zp - tol:
        return -1
    return 0


@njit(parallel=True, cache=True)
def _observe(depth, inst, c2w, K, order, B, tdepth, tK, near, rel, abs_, unobserved, disoccluded):
    """depth, inst [E, H, W]; c2w [E, 4, 4]; K [E, 4]; order [E, V] training views in visiting order;
    B [V, O + 1, 3, 4]: world point at the evaluated frame -> training camera, per object (O = static);
    tdepth [V, Ht, Wt]; tK [V, 4]. Writes unobserved, disoccluded [E, H, W]."""
    E, H, W = depth.shape
    V, Ht, Wt = tdepth.shape
    static = B.shape[1] - 1
    for r in prange(E * H):
        e = r // H
        j = r % H
        fx, fy, cx, cy = K[e, 0], K[e, 1], K[e, 2], K[e, 3]
        for i in range(W):
            z = np.float64(depth[e, j, i])
            if z <= 0.0:  # sky
                unobserved[e, j, i] = False
                disoccluded[e, j, i] = False
                continue
            xc = (i + 0.5 - cx) / fx * z
            yc = (j + 0.5 - cy) / fy * z
            wx = c2w[e, 0, 0] * xc + c2w[e, 0, 1] * yc + c2w[e, 0, 2] * z + c2w[e, 0, 3]
            wy = c2w[e, 1, 0] * xc + c2w[e, 1, 1] * yc + c2w[e, 1, 2] * z + c2w[e, 1, 3]
            wz = c2w[e, 2, 0] * xc + c2w[e, 2, 1] * yc + c2w[e, 2, 2] * z + c2w[e, 2, 3]
            o = int(inst[e, j, i]) - 1
            if o < 0:
                o = static
            seen = False
            hidden = False
            for k in range(V):
                v = order[e, k]
                zp = B[v, o, 2, 0] * wx + B[v, o, 2, 1] * wy + B[v, o, 2, 2] * wz + B[v, o, 2, 3]
                if zp <= near:
                    continue
                px = tK[v, 0] * (B[v, o, 0, 0] * wx + B[v, o, 0, 1] * wy + B[v, o, 0, 2] * wz + B[v, o, 0, 3]) / zp + tK[v, 2]
                if px < 0.0 or px >= Wt:
                    continue
                py = tK[v, 1] * (B[v, o, 1, 0] * wx + B[v, o, 1, 1] * wy + B[v, o, 1, 2] * wz + B[v, o, 1, 3]) / zp + tK[v, 3]
                if py < 0.0 or py >= Ht:
                    continue
                s = _depth_test(tdepth[v], px, py, zp, rel, abs_)
                if s == 1:
                    seen = True
                    break
                if s == -1:
                    hidden = True
            unobserved[e, j, i] = not seen
            disoccluded[e, j, i] = (not seen) and hidden


def recorded_views(scene, cams, Ks: dict[int, np.ndarray], width: int, height: int) -> TrainingViews:
    """The training views of a SynthStreet scene: every camera of `cams` (RigCamera) at the recorded pose of every
    frame, with the depth the renderer gives them (moving vehicles where they are at that frame)."""
    world = scene.world
    depth, w2c, K, frame, cam = [], [], [], [], []
    for t in range(world.frames):
        E = world.ego_pose(t)
        views = np.stack([np.linalg.inv(E @ c.cam_to_ego()) for c in cams])  # [C, 4, 4]
        Kt = np.stack([Ks[c.cam_id] for c in cams])  # [C, 4]
        depth.append(depth_maps(scene.mesh_at(t).v, views, Kt, width, height))
        w2c.append(views)
        K.append(Kt)
        frame += [t] * len(cams)
        cam += [c.cam_id for c in cams]
    return TrainingViews(np.concatenate(depth), np.concatenate(w2c), np.concatenate(K), np.array(frame, np.int64), np.array(cam, np.int64))


def visiting_order(train: TrainingViews, frame: int, cam: int) -> np.ndarray:  # [V] int64
    """Training views nearest first: same frame, same camera; then by frame distance, the same camera first."""
    return np.lexsort((train.cam, train.frame, train.cam != cam, np.abs(train.frame - frame))).astype(np.int64)


def observation_masks(
    depth: np.ndarray,
    inst: np.ndarray,
    cam_to_world: np.ndarray,
    K: np.ndarray,
    cams: np.ndarray,
    frame: int,
    train: TrainingViews,
    object_poses: np.ndarray | None = None,
    rel: float = REL_TOL,
    abs_: float = ABS_TOL,
) -> tuple[np.ndarray, np.ndarray]:
    """(unobserved, disoccluded) [E, H, W] bool of views at timestep `frame` (see the module docstring).

    depth [E, H, W] camera-axis z (0 = sky); inst [E, H, W] object index + 1 (0 = static world);
    cam_to_world [E, 4, 4] OpenCV axes; K [E, 4] fx, fy, cx, cy; cams [E] camera ids (visiting order);
    object_poses [F, O, 4, 4] object-to-world of each object at each frame (rigid), None = all static."""
    E = len(depth)
    W2C = np.asarray(train.world_to_cam, dtype=np.float64)  # [V, 4, 4]
    if object_poses is None or len(object_poses) == 0 or object_poses.shape[1] == 0:
        n_obj = 0
        B = W2C[:, None]  # [V, 1, 4, 4]
    else:
        P = np.asarray(object_poses, dtype=np.float64)  # [F, O, 4, 4]
        n_obj = P.shape[1]
        here_inv = np.linalg.inv(P[frame])  # [O, 4, 4] world at `frame` -> object
        moved = W2C[:, None] @ P[train.frame] @ here_inv[None]  # [V, O, 4, 4]
        B = np.concatenate([moved, W2C[:, None]], axis=1)  # [V, O + 1, 4, 4]
    if inst.size and int(inst.max()) > n_obj:
        raise ValueError(f"instance id {int(inst.max()) - 1} has no pose (only {n_obj} objects)")
    order = np.stack([visiting_order(train, frame, int(c)) for c in cams]) if E else np.zeros((0, len(W2C)), np.int64)
    unobserved = np.zeros(depth.shape, bool)
    disoccluded = np.zeros(depth.shape, bool)
    _observe(np.ascontiguousarray(depth, dtype=np.float32), np.ascontiguousarray(inst),
             np.ascontiguousarray(cam_to_world, dtype=np.float64), np.ascontiguousarray(K, dtype=np.float64), order,
             np.ascontiguousarray(B[:, :, :3, :]), np.ascontiguousarray(train.depth, dtype=np.float32),
             np.ascontiguousarray(train.K, dtype=np.float64), NEAR, float(rel), float(abs_), unobserved, disoccluded)
    return unobserved, disoccluded
