"""Which triangle is seen at each pixel centre, and how far? A z-buffer rasterizer (numba).

Pinhole cameras in the OpenCV convention; pixel (i, j) has its centre at (i + 0.5, j + 0.5),
as in gsplat and DriveStudio. Triangles are clipped against the near plane, so geometry that
passes behind the camera (a road strip) is exact. For every covered pixel centre the G-buffer
holds the camera-axis depth z, the triangle id and the perspective-correct barycentric
coordinates of the original triangle, stored as what is affine in the image over a plane: the
inverse depth q = 1/z (float64) and the numerators n = b/z of (b1, b2) (b0 = 1 - b1 - b2). So
z = 1/q is the exact depth of the triangle's plane along the pixel's ray (up to float64
rounding), and means of q and n over nearby samples of one triangle are exact at the mean position.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

NEAR = 0.05  # metres


@njit(cache=True, inline="always")
def _edge(ax, ay, bx, by, px, py):
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


@njit(cache=True)
def _raster_tri(sx, sy, sz, B, tid, qbuf, tbuf, nbuf):
    """Fill one screen triangle (corners sx, sy, depths sz, original barycentrics B [3, 3])."""
    H, W = qbuf.shape
    area = _edge(sx[0], sy[0], sx[1], sy[1], sx[2], sy[2])
    if abs(area) < 1e-14:
        return
    inv_area = 1.0 / area
    xmin = min(sx[0], min(sx[1], sx[2]))
    xmax = max(sx[0], max(sx[1], sx[2]))
    ymin = min(sy[0], min(sy[1], sy[2]))
    ymax = max(sy[0], max(sy[1], sy[2]))
    i0 = max(int(math.ceil(xmin - 0.5)), 0)
    i1 = min(int(math.floor(xmax - 0.5)), W - 1)
    j0 = max(int(math.ceil(ymin - 0.5)), 0)
    j1 = min(int(math.floor(ymax - 0.5)), H - 1)
    if i0 > i1 or j0 > j1:
        return
    # w_k(px, py) = a_k px + b_k py + c_k: normalised edge functions (barycentrics in screen space)
    a = np.empty(3)
    bb = np.empty(3)
    c = np.empty(3)
    for k in range(3):
        k1 = (k + 1) % 3
        k2 = (k + 2) % 3
        # w_k = edge(v_k1, v_k2, p) / area
        a[k] = -(sy[k2] - sy[k1]) * inv_area
        bb[k] = (sx[k2] - sx[k1]) * inv_area
        c[k] = ((sy[k2] - sy[k1]) * sx[k1] - (sx[k2] - sx[k1]) * sy[k1]) * inv_area
    # 1/z and the numerators of b1, b2 are linear in screen space too
    iz0, iz1, iz2 = 1.0 / sz[0], 1.0 / sz[1], 1.0 / sz[2]
    qa = a[0] * iz0 + a[1] * iz1 + a[2] * iz2
    qb = bb[0] * iz0 + bb[1] * iz1 + bb[2] * iz2
    qc = c[0] * iz0 + c[1] * iz1 + c[2] * iz2
    n1a = a[0] * iz0 * B[0, 1] + a[1] * iz1 * B[1, 1] + a[2] * iz2 * B[2, 1]
    n1b = bb[0] * iz0 * B[0, 1] + bb[1] * iz1 * B[1, 1] + bb[2] * iz2 * B[2, 1]
    n1c = c[0] * iz0 * B[0, 1] + c[1] * iz1 * B[1, 1] + c[2] * iz2 * B[2, 1]
    n2a = a[0] * iz0 * B[0, 2] + a[1] * iz1 * B[1, 2] + a[2] * iz2 * B[2, 2]
    n2b = bb[0] * iz0 * B[0, 2] + bb[1] * iz1 * B[1, 2] + bb[2] * iz2 * B[2, 2]
    n2c = c[0] * iz0 * B[0, 2] + c[1] * iz1 * B[1, 2] + c[2] * iz2 * B[2, 2]
    eps = -1e-9
    inva = np.empty(3)
    for k in range(3):
        inva[k] = 1.0 / a[k] if abs(a[k]) > 1e-15 else 0.0
    for j in range(j0, j1 + 1):
        py = j + 0.5
        # the span of px where all three w_k >= eps
        lo = i0 + 0.5
        hi = i1 + 0.5
        empty = False
        for k in range(3):
            r = bb[k] * py + c[k]
            if a[k] > 1e-15:
                lo = max(lo, (eps - r) * inva[k])
            elif a[k] < -1e-15:
                hi = min(hi, (eps - r) * inva[k])
            elif r < eps:
                empty = True
        if empty or lo > hi:
            continue
        ia = max(int(math.ceil(lo - 0.5)), i0)
        ib = min(int(math.floor(hi - 0.5)), i1)
        qrow = qb * py + qc
        n1row = n1b * py + n1c
        n2row = n2b * py + n2c
        w0row = bb[0] * py + c[0]
        w1row = bb[1] * py + c[1]
        w2row = bb[2] * py + c[2]
        for i in range(ia, ib + 1):
            px = i + 0.5
            # exact inside test at the centre (the span bounds may round by one pixel)
            if a[0] * px + w0row < eps or a[1] * px + w1row < eps or a[2] * px + w2row < eps:
                continue
            q = qa * px + qrow
            if q > qbuf[j, i]:
                qbuf[j, i] = q
                tbuf[j, i] = tid
                nbuf[j, i, 0] = n1a * px + n1row
                nbuf[j, i, 1] = n2a * px + n2row


@njit(cache=True)
def ray_triangle(tri_v, tid, ox, oy, oz, rx, ry, rz):
    """Möller-Trumbore: (t, b1, b2) of the ray o + t r against triangle `tid`; t = -1 when missed."""
    ax, ay, az = tri_v[tid, 0, 0], tri_v[tid, 0, 1], tri_v[tid, 0, 2]
    e1x, e1y, e1z = tri_v[tid, 1, 0] - ax, tri_v[tid, 1, 1] - ay, tri_v[tid, 1, 2] - az
    e2x, e2y, e2z = tri_v[tid, 2, 0] - ax, tri_v[tid, 2, 1] - ay, tri_v[tid, 2, 2] - az
    px, py, pz = ry * e2z - rz * e2y, rz * e2x - rx * e2z, rx * e2y - ry * e2x
    det = e1x * px + e1y * py + e1z * pz
    if abs(det) < 1e-14:
        return -1.0, 0.0, 0.0
    inv = 1.0 / det
    sx, sy, sz = ox - ax, oy - ay, oz - az
    b1 = (sx * px + sy * py + sz * pz) * inv
    if b1 < -1e-9 or b1 > 1.0 + 1e-9:
        return -1.0, 0.0, 0.0
    qx, qy, qz = sy * e1z - sz * e1y, sz * e1x - sx * e1z, sx * e1y - sy * e1x
    b2 = (rx * qx + ry * qy + rz * qz) * inv
    if b2 < -1e-9 or b1 + b2 > 1.0 + 1e-9:
        return -1.0, 0.0, 0.0
    t = (e2x * qx + e2y * qy + e2z * qz) * inv
    if t <= 0.0:
        return -1.0, 0.0, 0.0
    return t, b1, b2


@njit(cache=True)
def raster(tri_v, R, t, fx, fy, cx, cy, near, qbuf, tbuf, nbuf, cull=True):
    """Rasterize triangles `tri_v [T, 3, 3]` (world) seen by the world-to-camera (R, t) into
    qbuf [H, W] (float64 inverse depth, 0 where empty), tbuf [H, W] int32 (-1 where empty) and
    nbuf [H, W, 2] float32 (b1/z, b2/z).
    With `cull`, triangles whose counter-clockwise side faces away from the camera are skipped."""
    H, W = qbuf.shape
    qbuf[:] = 0.0
    tbuf[:] = -1
    # frustum side planes in camera space: x - xr z <= 0, xl z - x <= 0, same for y
    xl = (0.0 - cx) / fx
    xr = (W - cx) / fx
    yt = (0.0 - cy) / fy
    yb = (H - cy) / fy
    cam = np.empty((3, 3))
    poly = np.empty((4, 3))
    pb = np.empty((4, 3))
    sx = np.empty(3)
    sy = np.empty(3)
    sz = np.empty(3)
    Bs = np.empty((3, 3))
    for tid in range(tri_v.shape[0]):
        for k in range(3):
            for r in range(3):
                cam[k, r] = R[r, 0] * tri_v[tid, k, 0] + R[r, 1] * tri_v[tid, k, 1] + R[r, 2] * tri_v[tid, k, 2] + t[r]
        # cull: behind the near plane, facing away (every mesh is closed or seen from one side only),
        # or outside one side plane
        if cam[0, 2] < near and cam[1, 2] < near and cam[2, 2] < near:
            continue
        e1x, e1y, e1z = cam[1, 0] - cam[0, 0], cam[1, 1] - cam[0, 1], cam[1, 2] - cam[0, 2]
        e2x, e2y, e2z = cam[2, 0] - cam[0, 0], cam[2, 1] - cam[0, 1], cam[2, 2] - cam[0, 2]
        if cull and (e1y * e2z - e1z * e2y) * cam[0, 0] + (e1z * e2x - e1x * e2z) * cam[0, 1] + (e1x * e2y - e1y * e2x) * cam[0, 2] >= 0.0:
            continue
        if cam[0, 0] - xr * cam[0, 2] > 0 and cam[1, 0] - xr * cam[1, 2] > 0 and cam[2, 0] - xr * cam[2, 2] > 0:
            continue
        if xl * cam[0, 2] - cam[0, 0] > 0 and xl * cam[1, 2] - cam[1, 0] > 0 and xl * cam[2, 2] - cam[2, 0] > 0:
            continue
        if cam[0, 1] - yb * cam[0, 2] > 0 and cam[1, 1] - yb * cam[1, 2] > 0 and cam[2, 1] - yb * cam[2, 2] > 0:
            continue
        if yt * cam[0, 2] - cam[0, 1] > 0 and yt * cam[1, 2] - cam[1, 1] > 0 and yt * cam[2, 2] - cam[2, 1] > 0:
            continue
        # clip against the near plane (Sutherland-Hodgman, one plane: at most 4 corners)
        n = 0
        for k in range(3):
            k1 = (k + 1) % 3
            za = cam[k, 2]
            zb = cam[k1, 2]
            if za >= near:
                for r in range(3):
                    poly[n, r] = cam[k, r]
                    pb[n, r] = 1.0 if r == k else 0.0
                n += 1
            if (za >= near) != (zb >= near):
                s = (near - za) / (zb - za)
                for r in range(3):
                    poly[n, r] = cam[k, r] + s * (cam[k1, r] - cam[k, r])
                    ea = 1.0 if r == k else 0.0
                    eb = 1.0 if r == k1 else 0.0
                    pb[n, r] = ea + s * (eb - ea)
                n += 1
        for f in range(1, n - 1):
            for m in range(3):
                q = 0 if m == 0 else f + m - 1
                z = poly[q, 2]
                sx[m] = fx * poly[q, 0] / z + cx
                sy[m] = fy * poly[q, 1] / z + cy
                sz[m] = z
                for r in range(3):
                    Bs[m, r] = pb[q, r]
            _raster_tri(sx, sy, sz, Bs, tid, qbuf, tbuf, nbuf)
