"""How does a batch of cameras see the scene? Rasterize, shade, box-filter (numba, parallel over views).

Each view is rasterized at `ss` x `ss` samples per pixel (a regular grid: the K of the
supersampled image is K scaled by ss, so the sub-samples of pixel (i, j) are at
i + (k + 0.5) / ss). The sub-samples of a pixel are grouped by triangle, as MSAA does: each group
is shaded once, at the exact mean position of its sub-samples, with textures filtered over the
pixel's footprint (see shading), and weighted by its share of the sub-samples; a pixel inside one
triangle is shaded once, at its centre. Averaging is in linear radiance, then tone-mapped to
8-bit sRGB. Depth, instance ids and the sky mask come from a second raster at the pixel centres
(exact: the depth of the seen triangle's plane on the centre ray); depth is the camera-axis z of
the surface (0 for sky).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from faithfusion.synth import materials as M
from faithfusion.synth.meshes import Mesh
from faithfusion.synth.raster import NEAR, raster
from faithfusion.synth.shading import R_WET, S_SUN, TONEMAP_LUT, albedo, emission, light, sky, tonemap, wet_cover


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
    shadow_fine: np.ndarray  # [Sv', Su'] the same around the ego's path, finer
    shadow_p: np.ndarray  # [32] float64: per map origin (3), axes u, v, w (3 each), texel size, Su, Sv
    tonemap_lut: np.ndarray | None = None  # [8193] the camera's tone curve with its exposure; None = TONEMAP_LUT

    @staticmethod
    def from_mesh(mesh: Mesh, obj_p, obj_inst, road_p, sky_p, noise, shadow, shadow_fine, shadow_p, tonemap_lut=None) -> "SceneArrays":
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
                           obj_p, obj_inst, road_p, sky_p, noise, shadow, shadow_fine, shadow_p, tonemap_lut)


@njit(cache=True)
def _shadow_taps(px, py, pz, nx, ny, nz_, shadow, sp, o, radius):
    """Lit fraction from one map (params at sp[o:o+16]) with a bilinear-weighted PCF over
    (2 radius) x (2 radius) texels; -1 when the point is outside the map."""
    Sv, Su = shadow.shape
    texel = sp[o + 12]
    off = 1.5 * texel  # offset along the normal against shadow acne
    qx = px + nx * off - sp[o + 0]
    qy = py + ny * off - sp[o + 1]
    qz = pz + nz_ * off - sp[o + 2]
    a = (qx * sp[o + 3] + qy * sp[o + 4] + qz * sp[o + 5]) / texel - 0.5
    b = (qx * sp[o + 6] + qy * sp[o + 7] + qz * sp[o + 8]) / texel - 0.5
    if a < radius or b < radius or a >= Su - radius - 1 or b >= Sv - radius - 1:
        return -1.0
    d = qx * sp[o + 9] + qy * sp[o + 10] + qz * sp[o + 11] - texel
    i0 = int(math.floor(a))
    j0 = int(math.floor(b))
    fa = a - i0
    fb = b - j0
    lit = 0.0
    total = 0.0
    for dj in range(1 - radius, radius + 1):
        wj = 1.0 - fb if dj == 1 - radius else (fb if dj == radius else 1.0)
        for di in range(1 - radius, radius + 1):
            wi = 1.0 - fa if di == 1 - radius else (fa if di == radius else 1.0)
            w = wi * wj
            total += w
            if d <= shadow[j0 + dj, i0 + di]:
                lit += w
    return lit / total


@njit(cache=True)
def shadow_lookup(px, py, pz, nx, ny, nz_, shadow, fine, sp):
    """1 where the sun sees the point, 0 in shadow, soft over a few centimetres (percentage-closer
    filtering). The fine map around the ego's path first, else the coarse one, else lit.

    `sp` [32]: per map origin (3), axes u, v, w (3 each; w = the light's travel direction), texel
    size, Su, Sv; texel (i, j) covers (p - origin).u / texel in [i, i + 1), likewise v."""
    if fine.shape[0] > 1:
        lit = _shadow_taps(px, py, pz, nx, ny, nz_, fine, sp, 16, 2)
        if lit >= 0.0:
            return lit
    if shadow.shape[0] > 1:
        lit = _shadow_taps(px, py, pz, nx, ny, nz_, shadow, sp, 0, 1)
        if lit >= 0.0:
            return lit
    return 1.0


@njit(cache=True)
def shade_point(tid, b1, b2, z, C0, C1, C2, rx, ry, rz, axx, axy, axz, ayx, ayy, ayz,
                tri_uv, tri_mat, tri_obj, tri_aux, tri_n, tri_g, obj_p, road_p, sky_p, noise, shadow, shadow_fine, shadow_p, glass_buf):
    """Linear radiance of triangle `tid` seen along the (unnormalised, camera z = 1) ray r from C at
    depth z. a_x, a_y: the change of r from one pixel to the next in x and y (ray differentials)."""
    b0 = 1.0 - b1 - b2
    u = b0 * tri_uv[tid, 0, 0] + b1 * tri_uv[tid, 1, 0] + b2 * tri_uv[tid, 2, 0]
    v = b0 * tri_uv[tid, 0, 1] + b1 * tri_uv[tid, 1, 1] + b2 * tri_uv[tid, 2, 1]
    px, py, pz = C0 + z * rx, C1 + z * ry, C2 + z * rz
    rn = math.sqrt(rx * rx + ry * ry + rz * rz)
    dx, dy, dz = rx / rn, ry / rn, rz / rn
    nx, ny, nz_ = tri_n[tid, 0], tri_n[tid, 1], tri_n[tid, 2]
    nr = nx * rx + ny * ry + nz_ * rz
    if nr > 0.0:  # seen from behind (only where a mesh is open): light the side that is seen
        nx, ny, nz_ = -nx, -ny, -nz_
        nr = -nr
    nr = min(nr, -0.02 * rn)
    mat = tri_mat[tid]
    ln_x, ln_y, ln_z = nx, ny, nz_  # the normal used for lighting
    if mat == M.LEAVES and tri_aux[tid, 3] > 0.0:  # a rounded crown: bend the normal towards the radial direction
        ox, oy, oz = px - tri_aux[tid, 0], py - tri_aux[tid, 1], pz - tri_aux[tid, 2]
        on = math.sqrt(ox * ox + oy * oy + oz * oz) + 1e-9
        ln_x, ln_y, ln_z = 0.35 * nx + 0.65 * ox / on, 0.35 * ny + 0.65 * oy / on, 0.35 * nz_ + 0.65 * oz / on
        ln = math.sqrt(ln_x * ln_x + ln_y * ln_y + ln_z * ln_z) + 1e-9
        ln_x, ln_y, ln_z = ln_x / ln, ln_y / ln, ln_z / ln
    # footprint: where the neighbouring pixels' rays meet the triangle's plane
    kx = (nx * axx + ny * axy + nz_ * axz) / nr
    ky = (nx * ayx + ny * ayy + nz_ * ayz) / nr
    pxx, pxy, pxz = z * (axx - kx * rx), z * (axy - kx * ry), z * (axz - kx * rz)
    pyx, pyy, pyz = z * (ayx - ky * rx), z * (ayy - ky * ry), z * (ayz - ky * rz)
    gu0, gu1, gu2 = tri_g[tid, 0, 0], tri_g[tid, 0, 1], tri_g[tid, 0, 2]
    gv0, gv1, gv2 = tri_g[tid, 1, 0], tri_g[tid, 1, 1], tri_g[tid, 1, 2]
    fu = abs(gu0 * pxx + gu1 * pxy + gu2 * pxz) + abs(gu0 * pyx + gu1 * pyy + gu2 * pyz) + 1e-5
    fv = abs(gv0 * pxx + gv1 * pxy + gv2 * pxz) + abs(gv0 * pyx + gv1 * pyy + gv2 * pyz) + 1e-5
    fp = 0.5 * (abs(pxx) + abs(pxy) + abs(pxz) + abs(pyx) + abs(pyy) + abs(pyz)) + 1e-5
    obj = tri_obj[tid]
    glass_buf[0] = 0.0
    ar, ag, ab = albedo(mat, u, v, fu, fv, fp, tri_aux[tid, 0], tri_aux[tid, 1], px, py, pz, obj_p[obj], road_p, noise, glass_buf)
    spec = 1.0 if (mat >= M.CAR_SIDE and mat <= M.CAR_TOP) or mat == M.CABIN_TOP else 0.0
    if road_p[R_WET] > 0.0 and (mat == M.ROAD or mat == M.SIDEWALK or mat == M.CURB):
        wet = wet_cover(u, v, fu, fv, mat, road_p, noise)  # water darkens the surface and mirrors sky and sun
        k = 1.0 - 0.6 * wet
        ar, ag, ab = ar * k, ag * k, ab * k
        spec = 0.9 * wet
    sh = 1.0
    if ln_x * sky_p[S_SUN] + ln_y * sky_p[S_SUN + 1] + ln_z * sky_p[S_SUN + 2] > 0.0:
        sh = shadow_lookup(px, py, pz, nx, ny, nz_, shadow, shadow_fine, shadow_p)
    cr, cg, cb = light(ar, ag, ab, ln_x, ln_y, ln_z, dx, dy, dz, glass_buf[0], spec, sh, sky_p)
    if mat == M.SIGNAL or mat == M.LAMP:
        er, eg, eb = emission(mat, u, v, fu, fv)
        cr, cg, cb = cr + er, cg + eg, cb + eb
    return cr, cg, cb


@njit(cache=True, inline="always")
def pixel_groups(j, i, ss, qs, ts, ns, g_tid, g_n, g_x, g_y, g_z, g_b):
    """Group the ss x ss sub-samples of pixel (j, i) by triangle (MSAA-style); returns the number of groups.

    For each group: its triangle g_tid, sample count g_n and the exact values at the mean position of
    its samples (g_x, g_y offsets from the pixel centre in pixels; g_z depth; g_b barycentrics):
    over one plane 1/z and b/z are affine in the image, so their means are exact at the mean position."""
    ng = 0
    for dj in range(ss):
        for di in range(ss):
            tid = ts[j * ss + dj, i * ss + di]
            g = -1
            for k in range(ng):
                if g_tid[k] == tid:
                    g = k
            if g < 0:
                g = ng
                ng += 1
                g_tid[g] = tid
                g_n[g] = 0
                g_x[g] = 0.0
                g_y[g] = 0.0
                g_z[g] = 0.0
                g_b[g, 0] = 0.0
                g_b[g, 1] = 0.0
            g_n[g] += 1
            g_x[g] += di
            g_y[g] += dj
            if tid >= 0:
                g_z[g] += qs[j * ss + dj, i * ss + di]
                g_b[g, 0] += ns[j * ss + dj, i * ss + di, 0]
                g_b[g, 1] += ns[j * ss + dj, i * ss + di, 1]
    for g in range(ng):
        n = g_n[g]
        g_x[g] = (g_x[g] / n + 0.5) / ss - 0.5
        g_y[g] = (g_y[g] / n + 0.5) / ss - 0.5
        if g_tid[g] >= 0:
            z = 1.0 / g_z[g]  # the sums of q and n: their ratio is the mean's ratio
            g_b[g, 0] *= z
            g_b[g, 1] *= z
            g_z[g] = z * n
    return ng


@njit(cache=True)
def render_view(sc_v, tri_uv, tri_mat, tri_obj, tri_aux, tri_n, tri_g, obj_p, obj_inst, road_p, sky_p, noise, shadow, shadow_fine, shadow_p, lut,
                R, t, fx, fy, cx, cy, ss, rgb, depth, inst):
    """One view: rgb [H, W, 3] uint8, depth [H, W] float32 (0 = sky), inst [H, W] uint16 (instance + 1)."""
    H, W = depth.shape
    Hs, Ws = H * ss, W * ss
    qs = np.empty((Hs, Ws))
    ts = np.empty((Hs, Ws), np.int32)
    ns = np.empty((Hs, Ws, 2), np.float32)
    raster(sc_v, R, t, fx * ss, fy * ss, cx * ss, cy * ss, NEAR, qs, ts, ns, True)
    q1 = np.empty((H, W))
    t1 = np.empty((H, W), np.int32)
    n1 = np.empty((H, W, 2), np.float32)
    raster(sc_v, R, t, fx, fy, cx, cy, NEAR, q1, t1, n1, True)
    C = np.empty(3)
    for k in range(3):
        C[k] = -(R[0, k] * t[0] + R[1, k] * t[1] + R[2, k] * t[2])
    C0, C1, C2 = C[0], C[1], C[2]
    # ray differentials: the change of the camera-z = 1 ray from one pixel to the next
    axx, axy, axz = R[0, 0] / fx, R[0, 1] / fx, R[0, 2] / fx
    ayx, ayy, ayz = R[1, 0] / fy, R[1, 1] / fy, R[1, 2] / fy
    pix = 1.0 / fx
    glass = np.zeros(1)
    m = ss * ss
    g_tid = np.empty(m, np.int64)
    g_n = np.empty(m, np.int64)
    g_x = np.empty(m)
    g_y = np.empty(m)
    g_z = np.empty(m)
    g_b = np.empty((m, 2))
    inv = 1.0 / m
    for j in range(H):
        yc = (j + 0.5 - cy) / fy
        for i in range(W):
            xc = (i + 0.5 - cx) / fx
            # the pixel centre: exact depth, instance and sky from the 1x raster
            tid = t1[j, i]
            zc = 1.0 / q1[j, i] if tid >= 0 else 0.0
            depth[j, i] = np.float32(zc)
            inst[j, i] = np.uint16(obj_inst[tri_obj[tid]]) if tid >= 0 else np.uint16(0)
            uniform = True
            for dj in range(ss):
                for di in range(ss):
                    if ts[j * ss + dj, i * ss + di] != tid:
                        uniform = False
            if uniform:  # one triangle (or the sky) everywhere: shade once, at the centre
                ng = 1
                g_tid[0] = tid
                g_n[0] = m
                g_x[0] = 0.0
                g_y[0] = 0.0
                g_z[0] = zc
                g_b[0, 0] = n1[j, i, 0] * zc
                g_b[0, 1] = n1[j, i, 1] * zc
            else:
                ng = pixel_groups(j, i, ss, qs, ts, ns, g_tid, g_n, g_x, g_y, g_z, g_b)
            cr, cg, cb = 0.0, 0.0, 0.0
            for g in range(ng):
                w = g_n[g] * inv
                xs = xc + g_x[g] / fx
                ys = yc + g_y[g] / fy
                rx = R[0, 0] * xs + R[1, 0] * ys + R[2, 0]
                ry = R[0, 1] * xs + R[1, 1] * ys + R[2, 1]
                rz = R[0, 2] * xs + R[1, 2] * ys + R[2, 2]
                tid = g_tid[g]
                if tid < 0:
                    rn = math.sqrt(rx * rx + ry * ry + rz * rz)
                    xr, xg, xb = sky(rx / rn, ry / rn, rz / rn, sky_p, noise, pix)
                else:
                    xr, xg, xb = shade_point(tid, g_b[g, 0], g_b[g, 1], g_z[g], C0, C1, C2, rx, ry, rz, axx, axy, axz, ayx, ayy, ayz,
                                             tri_uv, tri_mat, tri_obj, tri_aux, tri_n, tri_g, obj_p, road_p, sky_p, noise, shadow, shadow_fine, shadow_p, glass)
                cr += w * xr
                cg += w * xg
                cb += w * xb
            rgb[j, i, 0] = np.uint8(min(int(tonemap(cr, lut) * 255.0 + 0.5), 255))
            rgb[j, i, 1] = np.uint8(min(int(tonemap(cg, lut) * 255.0 + 0.5), 255))
            rgb[j, i, 2] = np.uint8(min(int(tonemap(cb, lut) * 255.0 + 0.5), 255))


@njit(parallel=True, cache=True)
def render_batch(sc_v, tri_uv, tri_mat, tri_obj, tri_aux, tri_n, tri_g, obj_p, obj_inst, road_p, sky_p, noise, shadow, shadow_fine, shadow_p, lut,
                 Rs, ts, Ks, ss, rgb, depth, inst):
    """Views in parallel: Rs [V, 3, 3], ts [V, 3] world-to-camera, Ks [V, 4] (fx, fy, cx, cy)."""
    for k in prange(Rs.shape[0]):
        render_view(sc_v, tri_uv, tri_mat, tri_obj, tri_aux, tri_n, tri_g, obj_p, obj_inst, road_p, sky_p, noise, shadow, shadow_fine, shadow_p, lut,
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
                 scene.road_p, scene.sky_p, scene.noise, scene.shadow, scene.shadow_fine, scene.shadow_p,
                 TONEMAP_LUT if scene.tonemap_lut is None else scene.tonemap_lut, Rs, ts,
                 np.ascontiguousarray(Ks, dtype=np.float64), max(int(ss), 1), rgb, depth, inst)
    return rgb, depth, inst
