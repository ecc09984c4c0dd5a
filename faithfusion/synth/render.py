"""How does a batch of cameras see the scene? Rasterize, shade, box-filter (numba, parallel over views).

Each view is rasterized at `ss` x `ss` samples per pixel (a regular grid: the K of the
supersampled image is K scaled by ss, so the sub-samples of pixel (i, j) are at
i + (k + 0.5) / ss) and once more at the pixel centres. A pixel whose sub-samples all see the
triangle seen at its centre is shaded once, at the centre, with textures filtered over the whole
pixel's footprint (see shading); any other pixel (a geometric edge) is shaded at every sub-sample
with sub-sample footprints and box-filtered. Averaging is in linear radiance, then tone-mapped to
8-bit sRGB. Depth, instance ids and the sky mask come from the pixel-centre raster: depth is the
camera-axis z of the surface (0 for sky), exact at the pixel centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from faithfusion.synth import materials as M
from faithfusion.synth.meshes import Mesh
from faithfusion.synth.raster import NEAR, raster, ray_triangle
from faithfusion.synth.shading import S_SUN, TONEMAP_LUT, albedo, emission, light, sky, tonemap


@dataclass
class SceneArrays:
    """Everything the renderer reads, as flat arrays (one frame's geometry)."""

    tri_v: np.ndarray  # [T, 3, 3] float64
    tri_uv: np.ndarray  # [T, 3, 2] float32
    tri_mat: np.ndarray  # [T] int32
    tri_obj: np.ndarray  # [T] int32
    tri_aux: np.ndarray  # [T, 4] float32
    tri_n: np.ndarray  # [T, 3] float64 unit normals
    tri_g: np.ndarray  # [T, 2, 3] float64 world gradients of u and v on the triangle's plane
    obj_p: np.ndarray  # [O, P] float32
    obj_inst: np.ndarray  # [O] int32, instance index + 1 (0 none)
    road_p: np.ndarray  # [32] float64
    sky_p: np.ndarray  # [32] float64
    noise: np.ndarray  # [C, N, N] float32
    shadow: np.ndarray  # [Sv, Su] float32 distance along the sun's rays (ortho), or [1, 1] when unused
    shadow_p: np.ndarray  # [16] float64: origin (3), axes u, v, w (3 each), texel size, Su, Sv

    @staticmethod
    def from_mesh(mesh: Mesh, obj_p, obj_inst, road_p, sky_p, noise, shadow, shadow_p) -> "SceneArrays":
        e1 = mesh.v[:, 1] - mesh.v[:, 0]  # [T, 3]
        e2 = mesh.v[:, 2] - mesh.v[:, 0]
        n = np.cross(e1, e2)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        # gradients: g . e1 = d1, g . e2 = d2 with g in the plane of e1, e2
        a, b, c = (e1 * e1).sum(1), (e1 * e2).sum(1), (e2 * e2).sum(1)
        det = a * c - b * b
        det = np.where(np.abs(det) < 1e-18, 1e-18, det)
        uv = mesh.uv.astype(np.float64)
        g = np.empty((len(uv), 2, 3))
        for k in range(2):
            d1, d2 = uv[:, 1, k] - uv[:, 0, k], uv[:, 2, k] - uv[:, 0, k]
            x = (c * d1 - b * d2) / det
            y = (a * d2 - b * d1) / det
            g[:, k] = x[:, None] * e1 + y[:, None] * e2
        return SceneArrays(np.ascontiguousarray(mesh.v), np.ascontiguousarray(mesh.uv), mesh.mat, mesh.obj, np.ascontiguousarray(mesh.aux), n, g,
                           obj_p, obj_inst, road_p, sky_p, noise, shadow, shadow_p)


@njit(cache=True)
def shadow_lookup(px, py, pz, nx, ny, nz_, shadow, sp):
    """1 where the sun sees the point, 0 in shadow (percentage-closer filtering over 2x2 texels).

    `sp`: origin (3), axes u, v, w (3 each; w = the light's travel direction), texel size;
    texel (i, j) covers (p - origin).u / texel in [i, i + 1), likewise v."""
    if shadow.shape[0] < 2:
        return 1.0
    Sv, Su = shadow.shape
    texel = sp[12]
    # offset along the normal against shadow acne
    off = 1.5 * texel
    qx = px + nx * off - sp[0]
    qy = py + ny * off - sp[1]
    qz = pz + nz_ * off - sp[2]
    a = (qx * sp[3] + qy * sp[4] + qz * sp[5]) / texel - 0.5
    b = (qx * sp[6] + qy * sp[7] + qz * sp[8]) / texel - 0.5
    d = qx * sp[9] + qy * sp[10] + qz * sp[11]
    i0 = int(math.floor(a))
    j0 = int(math.floor(b))
    fa = a - i0
    fb = b - j0
    lit = 0.0
    for dj in range(2):
        for di in range(2):
            i = i0 + di
            j = j0 + dj
            w = (fa if di else 1.0 - fa) * (fb if dj else 1.0 - fb)
            if i < 0 or j < 0 or i >= Su or j >= Sv:
                lit += w
            elif d <= shadow[j, i] + texel:
                lit += w
    return lit


@njit(cache=True)
def shade_point(tid, b1, b2, C, z, r, ax, ay, tri_uv, tri_mat, tri_obj, tri_aux, tri_n, tri_g, obj_p, road_p, sky_p, noise, shadow, shadow_p, glass_buf):
    """Linear radiance of triangle `tid` seen along the (unnormalised, camera z = 1) ray r from C at
    depth z. ax, ay: the change of r from one sample to the next in x and y (ray differentials)."""
    b0 = 1.0 - b1 - b2
    u = b0 * tri_uv[tid, 0, 0] + b1 * tri_uv[tid, 1, 0] + b2 * tri_uv[tid, 2, 0]
    v = b0 * tri_uv[tid, 0, 1] + b1 * tri_uv[tid, 1, 1] + b2 * tri_uv[tid, 2, 1]
    px, py, pz = C[0] + z * r[0], C[1] + z * r[1], C[2] + z * r[2]
    rn = math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])
    dx, dy, dz = r[0] / rn, r[1] / rn, r[2] / rn
    nx, ny, nz_ = tri_n[tid, 0], tri_n[tid, 1], tri_n[tid, 2]
    nr = nx * r[0] + ny * r[1] + nz_ * r[2]
    if nr > 0.0:  # two-sided: light the side that is seen
        nx, ny, nz_ = -nx, -ny, -nz_
        nr = -nr
    nr = min(nr, -0.02 * rn)
    # footprint: where the neighbouring sample rays meet the triangle's plane
    kx = (nx * ax[0] + ny * ax[1] + nz_ * ax[2]) / nr
    ky = (nx * ay[0] + ny * ay[1] + nz_ * ay[2]) / nr
    pxx, pxy, pxz = z * (ax[0] - kx * r[0]), z * (ax[1] - kx * r[1]), z * (ax[2] - kx * r[2])
    pyx, pyy, pyz = z * (ay[0] - ky * r[0]), z * (ay[1] - ky * r[1]), z * (ay[2] - ky * r[2])
    gu0, gu1, gu2 = tri_g[tid, 0, 0], tri_g[tid, 0, 1], tri_g[tid, 0, 2]
    gv0, gv1, gv2 = tri_g[tid, 1, 0], tri_g[tid, 1, 1], tri_g[tid, 1, 2]
    fu = abs(gu0 * pxx + gu1 * pxy + gu2 * pxz) + abs(gu0 * pyx + gu1 * pyy + gu2 * pyz) + 1e-5
    fv = abs(gv0 * pxx + gv1 * pxy + gv2 * pxz) + abs(gv0 * pyx + gv1 * pyy + gv2 * pyz) + 1e-5
    fp = 0.5 * (math.sqrt(pxx * pxx + pxy * pxy + pxz * pxz) + math.sqrt(pyx * pyx + pyy * pyy + pyz * pyz)) + 1e-5
    mat = tri_mat[tid]
    prm = obj_p[tri_obj[tid]]
    glass_buf[0] = 0.0
    ar, ag, ab = albedo(mat, u, v, fu, fv, fp, tri_aux[tid, 0], tri_aux[tid, 1], px, py, pz, prm, road_p, noise, glass_buf)
    spec = 1.0 if (mat >= M.CAR_SIDE and mat <= M.CAR_TOP) or mat == M.CABIN_TOP else 0.0
    sh = 1.0
    if nx * sky_p[S_SUN] + ny * sky_p[S_SUN + 1] + nz_ * sky_p[S_SUN + 2] > 0.0:
        sh = shadow_lookup(px, py, pz, nx, ny, nz_, shadow, shadow_p)
    pix = math.sqrt(ax[0] * ax[0] + ax[1] * ax[1] + ax[2] * ax[2])
    cr, cg, cb = light(ar, ag, ab, nx, ny, nz_, dx, dy, dz, glass_buf[0], spec, sh, sky_p, noise, pix)
    er, eg, eb = emission(mat, u, v, fu, fv)
    return cr + er, cg + eg, cb + eb


@njit(cache=True)
def _shade(tid, b1, b2, z, xc, yc, sx, sy, R, C, tri_uv, tri_mat, tri_obj, tri_aux, tri_n, tri_g, obj_p, road_p, sky_p, noise, shadow, shadow_p, glass, r, ax, ay):
    """Radiance of one sample at normalised image coordinates (xc, yc); sx, sy: sample spacing in
    normalised coordinates (sets the footprint)."""
    for k in range(3):
        r[k] = R[0, k] * xc + R[1, k] * yc + R[2, k]
        ax[k] = R[0, k] * sx
        ay[k] = R[1, k] * sy
    if tid < 0:
        rn = math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])
        return sky(r[0] / rn, r[1] / rn, r[2] / rn, sky_p, noise, sx)
    return shade_point(tid, b1, b2, C, z, r, ax, ay, tri_uv, tri_mat, tri_obj, tri_aux, tri_n, tri_g, obj_p, road_p, sky_p, noise, shadow, shadow_p, glass)


@njit(cache=True)
def centre_sample(j, i, ss, zs, ts, bs, sc_v, C, R, xc, yc):
    """Triangle, depth and barycentrics at the centre of pixel (j, i) from its ss x ss sub-samples.

    When all sub-samples see one triangle, its plane's 1/z and b/z are affine in the image, and the
    centre is the mean of the sub-sample positions: their means give the exact centre values. At an
    edge, the centre ray is intersected exactly with each triangle the sub-samples see."""
    tid = ts[j * ss, i * ss]
    same = True
    for dj in range(ss):
        for di in range(ss):
            if ts[j * ss + dj, i * ss + di] != tid:
                same = False
    if same:
        if tid < 0:
            return tid, 0.0, 0.0, 0.0, True
        q = 0.0
        n1 = 0.0
        n2 = 0.0
        for dj in range(ss):
            for di in range(ss):
                iz = 1.0 / zs[j * ss + dj, i * ss + di]
                q += iz
                n1 += bs[j * ss + dj, i * ss + di, 0] * iz
                n2 += bs[j * ss + dj, i * ss + di, 1] * iz
        z = ss * ss / q
        return tid, z, n1 * z / (ss * ss), n2 * z / (ss * ss), True
    rx = R[0, 0] * xc + R[1, 0] * yc + R[2, 0]
    ry = R[0, 1] * xc + R[1, 1] * yc + R[2, 1]
    rz = R[0, 2] * xc + R[1, 2] * yc + R[2, 2]
    best = -1
    bz = np.inf
    bb1 = 0.0
    bb2 = 0.0
    nearest = -1
    nz_ = np.inf
    for dj in range(ss):
        for di in range(ss):
            cand = ts[j * ss + dj, i * ss + di]
            if cand < 0:
                continue
            if zs[j * ss + dj, i * ss + di] < nz_:
                nz_ = zs[j * ss + dj, i * ss + di]
                nearest = cand
            t, c1, c2 = ray_triangle(sc_v, cand, C[0], C[1], C[2], rx, ry, rz)
            if t > 0.0 and t < bz:
                best, bz, bb1, bb2 = cand, t, c1, c2
    if best >= 0 or nearest < 0:
        return best, (bz if best >= 0 else 0.0), bb1, bb2, False
    return -1, 0.0, 0.0, 0.0, False


@njit(cache=True)
def render_view(sc_v, tri_uv, tri_mat, tri_obj, tri_aux, tri_n, tri_g, obj_p, obj_inst, road_p, sky_p, noise, shadow, shadow_p, lut,
                R, t, fx, fy, cx, cy, ss, rgb, depth, inst):
    """One view: rgb [H, W, 3] uint8, depth [H, W] float32 (0 = sky), inst [H, W] uint16 (instance + 1)."""
    H, W = depth.shape
    Hs, Ws = H * ss, W * ss
    zs = np.empty((Hs, Ws))
    ts = np.empty((Hs, Ws), np.int32)
    bs = np.empty((Hs, Ws, 2), np.float32)
    raster(sc_v, R, t, fx * ss, fy * ss, cx * ss, cy * ss, NEAR, zs, ts, bs)
    C = np.empty(3)
    for k in range(3):
        C[k] = -(R[0, k] * t[0] + R[1, k] * t[1] + R[2, k] * t[2])
    glass = np.zeros(1)
    r = np.empty(3)
    ax = np.empty(3)
    ay = np.empty(3)
    inv = 1.0 / (ss * ss)
    for j in range(H):
        yc = (j + 0.5 - cy) / fy
        for i in range(W):
            xc = (i + 0.5 - cx) / fx
            tid, zc, c1, c2, same = centre_sample(j, i, ss, zs, ts, bs, sc_v, C, R, xc, yc)
            depth[j, i] = np.float32(zc) if tid >= 0 else np.float32(0.0)
            inst[j, i] = np.uint16(obj_inst[tri_obj[tid]]) if tid >= 0 else np.uint16(0)
            if same:
                cr, cg, cb = _shade(tid, c1, c2, zc, xc, yc, 1.0 / fx, 1.0 / fy,
                                    R, C, tri_uv, tri_mat, tri_obj, tri_aux, tri_n, tri_g, obj_p, road_p, sky_p, noise, shadow, shadow_p, glass, r, ax, ay)
            else:
                cr, cg, cb = 0.0, 0.0, 0.0
                for dj in range(ss):
                    for di in range(ss):
                        jj = j * ss + dj
                        ii = i * ss + di
                        xr, xg, xb = _shade(ts[jj, ii], bs[jj, ii, 0], bs[jj, ii, 1], zs[jj, ii], (ii + 0.5 - cx * ss) / (fx * ss),
                                            (jj + 0.5 - cy * ss) / (fy * ss), 1.0 / (fx * ss), 1.0 / (fy * ss),
                                            R, C, tri_uv, tri_mat, tri_obj, tri_aux, tri_n, tri_g, obj_p, road_p, sky_p, noise, shadow, shadow_p, glass, r, ax, ay)
                        cr += xr
                        cg += xg
                        cb += xb
                cr *= inv
                cg *= inv
                cb *= inv
            rgb[j, i, 0] = np.uint8(min(int(tonemap(cr, lut) * 255.0 + 0.5), 255))
            rgb[j, i, 1] = np.uint8(min(int(tonemap(cg, lut) * 255.0 + 0.5), 255))
            rgb[j, i, 2] = np.uint8(min(int(tonemap(cb, lut) * 255.0 + 0.5), 255))


@njit(parallel=True, cache=True)
def render_batch(sc_v, tri_uv, tri_mat, tri_obj, tri_aux, tri_n, tri_g, obj_p, obj_inst, road_p, sky_p, noise, shadow, shadow_p, lut,
                 Rs, ts, Ks, ss, rgb, depth, inst):
    """Views in parallel: Rs [V, 3, 3], ts [V, 3] world-to-camera, Ks [V, 4] (fx, fy, cx, cy)."""
    for k in prange(Rs.shape[0]):
        render_view(sc_v, tri_uv, tri_mat, tri_obj, tri_aux, tri_n, tri_g, obj_p, obj_inst, road_p, sky_p, noise, shadow, shadow_p, lut,
                    Rs[k], ts[k], Ks[k, 0], Ks[k, 1], Ks[k, 2], Ks[k, 3], ss, rgb[k], depth[k], inst[k])


def render(scene: SceneArrays, world_to_cams: np.ndarray, Ks: np.ndarray, width: int, height: int, ss: int = 2):
    """Render views `world_to_cams [V, 4, 4]` (OpenCV) with `Ks [V, 4]` (fx, fy, cx, cy).

    Returns rgb [V, H, W, 3] uint8, depth [V, H, W] float32 (camera z, 0 where sky), inst [V, H, W] uint16."""
    V = len(world_to_cams)
    rgb = np.zeros((V, height, width, 3), np.uint8)
    depth = np.zeros((V, height, width), np.float32)
    inst = np.zeros((V, height, width), np.uint16)
    Rs = np.ascontiguousarray(world_to_cams[:, :3, :3], dtype=np.float64)
    ts = np.ascontiguousarray(world_to_cams[:, :3, 3], dtype=np.float64)
    render_batch(scene.tri_v, scene.tri_uv, scene.tri_mat, scene.tri_obj, scene.tri_aux, scene.tri_n, scene.tri_g, scene.obj_p, scene.obj_inst,
                 scene.road_p, scene.sky_p, scene.noise, scene.shadow, scene.shadow_p, TONEMAP_LUT, Rs, ts,
                 np.ascontiguousarray(Ks, dtype=np.float64), max(int(ss), 1), rgb, depth, inst)
    return rgb, depth, inst
