"""Which pixels show painted lane lines? The exact lane-line mask of a view (numba).

The lane lines are the painted markings of the lane boundaries that the shader draws (`shading.road_albedo`):
the solid white edge lines, the dashed white lines between lanes of one direction and the yellow centre
marking (double solid, solid + dashed or dashed). Crosswalk bars and stop lines are not lane lines and are
left out. A view is rasterized at `ss` x `ss` samples per pixel (the renderer's sample grid); a sample counts
when the surface it sees is the road and its texture coordinates (s, l) lie on unworn paint; a pixel is in the
mask when at least half of its samples count. Occlusion is exact per sample (a car in front hides the paint).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from faithfusion.synth import materials as M
from faithfusion.synth.raster import NEAR, raster
from faithfusion.synth.render import SceneArrays
from faithfusion.synth.shading import R_CENTRE, R_DASH, R_GAP, R_LANE_W, R_LANES_R, R_NB, R_NF, interval, pulse

SAMPLES = 4  # per pixel side: 16 samples
COVER = 0.5  # share of the samples on paint for a pixel to count
_F = 1e-6  # the box filter width of an unfiltered (point) lookup


@njit(cache=True)
def lane_paint(s, l, road_p) -> bool:
    """Is road point (s, l) on a lane line's paint? The shader's markings without filtering or wear."""
    lw = road_p[R_LANE_W]
    lr = road_p[R_LANES_R]
    nf = int(road_p[R_NF])
    nlanes = nf + int(road_p[R_NB])
    ll = (l - lr) / lw
    k = int(math.floor(ll + 0.5))
    lb = lr + k * lw
    if k < 0 or k > nlanes or abs(l - lb) >= 0.3:
        return False
    dash = pulse(s, road_p[R_DASH] + road_p[R_GAP], road_p[R_DASH], _F)
    if k == 0 or k == nlanes:
        paint = interval(l - lb, -0.075, 0.075, _F)
    elif k == nf:
        style = int(road_p[R_CENTRE])
        if style == 0:
            paint = interval(l - lb, -0.165, -0.055, _F) + interval(l - lb, 0.055, 0.165, _F)
        elif style == 1:
            paint = interval(l - lb, -0.165, -0.055, _F) + dash * interval(l - lb, 0.055, 0.165, _F)
        else:
            paint = dash * interval(l - lb, -0.06, 0.06, _F)
    else:
        paint = dash * interval(l - lb, -0.075, 0.075, _F)
    return paint > 0.5


@njit(cache=True)
def lane_cover_view(tri_v, tri_uv, tri_mat, road_p, R, t, fx, fy, cx, cy, ss, cover):
    """Fill `cover [H, W]` (float32) with the share of each pixel's ss x ss samples on lane-line paint."""
    H, W = cover.shape
    qs = np.empty((H * ss, W * ss))
    ts = np.empty((H * ss, W * ss), np.int32)
    ns = np.empty((H * ss, W * ss, 2), np.float32)
    raster(tri_v, R, t, fx * ss, fy * ss, cx * ss, cy * ss, NEAR, qs, ts, ns, True)
    inv = 1.0 / (ss * ss)
    for j in range(H):
        for i in range(W):
            n = 0
            for dj in range(ss):
                for di in range(ss):
                    y, x = j * ss + dj, i * ss + di
                    tid = ts[y, x]
                    if tid < 0 or tri_mat[tid] != M.ROAD:
                        continue
                    z = 1.0 / qs[y, x]
                    b1 = ns[y, x, 0] * z
                    b2 = ns[y, x, 1] * z
                    b0 = 1.0 - b1 - b2
                    u = b0 * tri_uv[tid, 0, 0] + b1 * tri_uv[tid, 1, 0] + b2 * tri_uv[tid, 2, 0]
                    v = b0 * tri_uv[tid, 0, 1] + b1 * tri_uv[tid, 1, 1] + b2 * tri_uv[tid, 2, 1]
                    if lane_paint(u, v, road_p):
                        n += 1
            cover[j, i] = n * inv


@njit(parallel=True, cache=True)
def _cover_batch(tri_v, tri_uv, tri_mat, road_p, Rs, ts, Ks, ss, cover):
    for k in prange(Rs.shape[0]):
        lane_cover_view(tri_v, tri_uv, tri_mat, road_p, Rs[k], ts[k], Ks[k, 0], Ks[k, 1], Ks[k, 2], Ks[k, 3], ss, cover[k])


def lane_cover(scene: SceneArrays, world_to_cams: np.ndarray, Ks: np.ndarray, width: int, height: int,
               ss: int = SAMPLES) -> np.ndarray:  # [V, H, W] float32 in [0, 1]
    """Share of each pixel's samples on lane-line paint, for views `world_to_cams [V, 4, 4]` (OpenCV) and
    `Ks [V, 4]` (fx, fy, cx, cy)."""
    V = len(world_to_cams)
    cover = np.zeros((V, height, width), np.float32)
    Rs = np.ascontiguousarray(world_to_cams[:, :3, :3], dtype=np.float64)
    ts = np.ascontiguousarray(world_to_cams[:, :3, 3], dtype=np.float64)
    _cover_batch(scene.tri_v, scene.tri_uv, scene.tri_mat, scene.road_p, Rs, ts, np.ascontiguousarray(Ks, dtype=np.float64),
                 max(int(ss), 1), cover)
    return cover


def lane_masks(scene: SceneArrays, world_to_cams: np.ndarray, Ks: np.ndarray, width: int, height: int,
               ss: int = SAMPLES) -> np.ndarray:  # [V, H, W] bool
    """The lane-line masks: pixels with at least half of their samples on lane-line paint."""
    return lane_cover(scene, world_to_cams, Ks, width, height, ss) >= COVER
