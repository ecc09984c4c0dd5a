"""What does the renderer get at frame t? Static meshes, vehicles moved to t, parameters, sun shadows.

`SynthScene` builds the static world once (meshes, shading parameters, sun shadow maps of the
static geometry: a coarse one over the whole road, a fine one around the ego's path) and each
vehicle's mesh once in its box frame; `arrays_at(t)` places the vehicles at frame t and adds the
moving ones' shadows.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from faithfusion.synth import materials as M
from faithfusion.synth import shading as S
from faithfusion.synth.meshes import Mesh, Objects, build_static, build_vehicle, vehicle_params
from faithfusion.synth.render import SceneArrays
from faithfusion.synth.world import World


def pack_road(world: World) -> np.ndarray:  # [32] float64, layout in shading.R_*
    r = world.road
    p = np.zeros(32)
    p[S.R_LANES_R], p[S.R_LANE_W], p[S.R_NF], p[S.R_NB] = r.l_right_lanes, r.lane_width, r.n_forward, r.n_backward
    p[S.R_CURB_R], p[S.R_CURB_L], p[S.R_CENTRE], p[S.R_DASH], p[S.R_GAP] = r.l_right_curb, r.l_left_curb, r.centre_style, r.dash_length, r.dash_gap
    p[S.R_CROSS] = r.crosswalk_s if np.isfinite(r.crosswalk_s) else -1e9
    p[S.R_SIDEWALK_W], p[S.R_TILE] = r.sidewalk_width, r.tile
    p[S.R_SIDEWALK:S.R_SIDEWALK + 3] = M.linear(r.sidewalk)
    p[S.R_LOT:S.R_LOT + 3] = M.linear(r.lot)
    p[S.R_CURB_H] = r.curb_height
    p[20:23] = M.linear(r.asphalt)
    p[S.R_WET] = world.look.wetness
    return p


def pack_sky(world: World) -> np.ndarray:  # [32] float64, layout in shading.S_*
    k = world.sky
    p = np.zeros(32)
    boost = 1.7  # sky radiance relative to a white surface in the sun
    p[S.S_ZENITH:S.S_ZENITH + 3] = M.linear(k.zenith) * boost
    p[S.S_HORIZON:S.S_HORIZON + 3] = M.linear(k.horizon) * boost
    p[S.S_HAZE:S.S_HAZE + 3] = M.linear(k.haze) * boost
    p[S.S_COVER], p[S.S_CSCALE] = k.cloud_cover, k.cloud_scale
    p[S.S_COFF:S.S_COFF + 2] = k.cloud_offset
    p[S.S_SUN:S.S_SUN + 3] = k.sun_dir
    p[S.S_SUNC:S.S_SUNC + 3] = k.sun_colour
    p[S.S_AMB:S.S_AMB + 3] = k.ambient
    return p


# --- sun shadows: an orthographic depth map along the sun's rays ---------------------------------------


@njit(parallel=True, cache=True)
def _raster_ortho(tri_v, o, U, texel, zbuf):
    """Minimum distance along U[2] (the light's travel direction) per texel; x = (p-o).U[0] / texel.
    Parallel over bands of rows; each band keeps the nearest of every triangle over it."""
    Sv, Su = zbuf.shape
    T = tri_v.shape[0]
    sx = np.empty((T, 3))
    sy = np.empty((T, 3))
    sd = np.empty((T, 3))
    for t in range(T):
        for k in range(3):
            q0 = tri_v[t, k, 0] - o[0]
            q1 = tri_v[t, k, 1] - o[1]
            q2 = tri_v[t, k, 2] - o[2]
            sx[t, k] = (q0 * U[0, 0] + q1 * U[0, 1] + q2 * U[0, 2]) / texel
            sy[t, k] = (q0 * U[1, 0] + q1 * U[1, 1] + q2 * U[1, 2]) / texel
            sd[t, k] = q0 * U[2, 0] + q1 * U[2, 1] + q2 * U[2, 2]
    bands = 32
    rows = (Sv + bands - 1) // bands
    for band in prange(bands):
        r0 = band * rows
        r1 = min(r0 + rows, Sv) - 1
        for t in range(T):
            area = (sx[t, 1] - sx[t, 0]) * (sy[t, 2] - sy[t, 0]) - (sy[t, 1] - sy[t, 0]) * (sx[t, 2] - sx[t, 0])
            if abs(area) < 1e-12:
                continue
            j0 = max(int(math.ceil(min(sy[t, 0], min(sy[t, 1], sy[t, 2])) - 0.5)), r0)
            j1 = min(int(math.floor(max(sy[t, 0], max(sy[t, 1], sy[t, 2])) - 0.5)), r1)
            if j0 > j1:
                continue
            i0 = max(int(math.ceil(min(sx[t, 0], min(sx[t, 1], sx[t, 2])) - 0.5)), 0)
            i1 = min(int(math.floor(max(sx[t, 0], max(sx[t, 1], sx[t, 2])) - 0.5)), Su - 1)
            for j in range(j0, j1 + 1):
                py = j + 0.5
                for i in range(i0, i1 + 1):
                    px = i + 0.5
                    w0 = ((sx[t, 1] - px) * (sy[t, 2] - py) - (sy[t, 1] - py) * (sx[t, 2] - px)) / area
                    w1 = ((sx[t, 2] - px) * (sy[t, 0] - py) - (sy[t, 2] - py) * (sx[t, 0] - px)) / area
                    w2 = 1.0 - w0 - w1
                    if w0 < -1e-9 or w1 < -1e-9 or w2 < -1e-9:
                        continue
                    d = w0 * sd[t, 0] + w1 * sd[t, 1] + w2 * sd[t, 2]
                    if d < zbuf[j, i]:
                        zbuf[j, i] = d


def shadow_frame(world: World, s_range: tuple[float, float], l_range: tuple[float, float], z_range: tuple[float, float],
                 texel: float, max_size: int = 4096) -> np.ndarray:
    """[16] parameters of a shadow map whose window covers the receivers in the road-coordinate box
    s_range x l_range x z_range: origin, axes u, v, w (w = -sun, the light's travel), texel, Su, Sv."""
    road = world.road
    w = -world.sky.sun_dir / np.linalg.norm(world.sky.sun_dir)
    u = np.cross(w, [0.0, 0.0, 1.0])
    u /= np.linalg.norm(u)
    v = np.cross(w, u)
    s = np.linspace(s_range[0], s_range[1], 64)
    pts = np.concatenate([road.line.point(s, l, z) for l in l_range for z in z_range])
    qu, qv, qw = pts @ u, pts @ v, pts @ w
    extent_u, extent_v = qu.max() - qu.min(), qv.max() - qv.min()
    texel = max(texel, max(extent_u, extent_v) / max_size)
    o = qu.min() * u + qv.min() * v + (qw.min() - 500.0) * w
    p = np.zeros(16)
    p[0:3], p[3:6], p[6:9], p[9:12] = o, u, v, w
    p[12], p[13], p[14] = texel, math.ceil(extent_u / texel), math.ceil(extent_v / texel)
    return p


def shadow_map(mesh: Mesh, sp: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:  # [Sv, Su] float32
    zbuf = np.full((int(sp[14]), int(sp[13])), np.inf, np.float32) if base is None else base.copy()
    U = np.stack([sp[3:6], sp[6:9], sp[9:12]])
    _raster_ortho(np.ascontiguousarray(mesh.v), sp[0:3].copy(), U, float(sp[12]), zbuf)
    return zbuf


class SynthScene:
    """The world of one seed, meshed and parameterised; vehicles are placed per frame."""

    def __init__(self, world: World, shadows: bool = True) -> None:
        self.world = world
        objects = Objects()
        self.static = build_static(world, objects)
        self.vehicle_meshes: list[Mesh] = []
        self.vehicle_obj: list[int] = []  # object index of each vehicle
        for i, v in enumerate(world.vehicles):
            prm = vehicle_params(v)
            obj = objects.add(prm, inst=i + 1, cls=M.CLASS_VEHICLE)
            self.vehicle_obj.append(obj)
            self.vehicle_meshes.append(build_vehicle(v, obj, prm))
        self.obj_p, self.obj_inst, self.obj_cls = objects.arrays()
        self.road_p = pack_road(world)
        self.sky_p = pack_sky(world)
        self.noise = S.make_noise(world.seed + 7919)
        self.tonemap_lut = None if world.look.exposure == 1.0 else S.make_tonemap_lut(exposure=world.look.exposure)
        self.shadows = shadows
        if shadows:
            # a coarse map over the whole road and a fine one around the ego's path (+- the largest views)
            road = world.road
            s0, s1 = world.ego_s(0), world.ego_s(world.frames - 1)
            self.shadow_p = np.concatenate([
                shadow_frame(world, (road.s_min, road.s_max), (-75.0, 75.0), (0.0, 60.0), 0.1),
                shadow_frame(world, (s0 - 25.0, s1 + 45.0), (world.ego_l - 30.0, world.ego_l + 30.0), (0.0, 15.0), 0.04),
            ])
            parked = [m.transformed(v.pose(0, world.dt, world.road.line)) for v, m in zip(world.vehicles, self.vehicle_meshes) if v.parked]
            static = Mesh.concat([self.static] + parked)
            self.static_shadow = shadow_map(static, self.shadow_p[:16])
            self.static_shadow_fine = shadow_map(static, self.shadow_p[16:])
        else:
            self.shadow_p = np.zeros(32)
            self.static_shadow = self.static_shadow_fine = np.zeros((1, 1), np.float32)

    def vehicle_poses(self, t: int) -> list[np.ndarray]:  # [4, 4] box-centre-to-world of every vehicle
        w = self.world
        return [v.pose(t, w.dt, w.road.line) for v in w.vehicles]

    def object_velocities(self, t: int) -> np.ndarray:  # [O, 3] world m/s
        w = self.world
        vel = np.zeros((len(self.obj_p), 3))
        for v, obj in zip(w.vehicles, self.vehicle_obj):
            if not v.parked:
                vel[obj] = v.velocity(t, w.dt, w.road.line)
        return vel

    def mesh_at(self, t: int) -> Mesh:
        return Mesh.concat([self.static] + [m.transformed(T) for m, T in zip(self.vehicle_meshes, self.vehicle_poses(t))])

    def arrays_at(self, t: int) -> SceneArrays:
        mesh = self.mesh_at(t)
        shadow, fine = self.static_shadow, self.static_shadow_fine
        if self.shadows:
            moving = [m.transformed(v.pose(t, self.world.dt, self.world.road.line)) for v, m in zip(self.world.vehicles, self.vehicle_meshes) if not v.parked]
            if moving:
                movers = Mesh.concat(moving)
                shadow = shadow_map(movers, self.shadow_p[:16], self.static_shadow)
                fine = shadow_map(movers, self.shadow_p[16:], self.static_shadow_fine)
        return SceneArrays.from_mesh(mesh, self.obj_p, self.obj_inst, self.road_p, self.sky_p, self.noise, shadow, fine, self.shadow_p,
                                     self.tonemap_lut)
