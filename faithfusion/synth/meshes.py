"""What does the world look like as triangles? Triangle soups for road, buildings, props and vehicles.

A `Mesh` is a soup: every triangle has its own three corners (`v [T, 3, 3]`), per-corner texture
coordinates (`uv [T, 3, 2]`, in metres, their meaning depends on the material), a material id,
an object index into the `Objects` table and a per-triangle `aux [T, 4]` (face extents).
Winding is counter-clockwise seen from outside, so `cross(v1 - v0, v2 - v0)` is the outer normal.
Static geometry is built once in world coordinates; each vehicle is built once in its box frame
(origin at the box centre, x forward, z up) and moved every frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from faithfusion.synth import materials as M
from faithfusion.synth.world import CAR_TYPES, Building, Pole, Tree, Vehicle, World


@dataclass
class Mesh:
    v: np.ndarray  # [T, 3, 3] float64 corners
    uv: np.ndarray  # [T, 3, 2] float32
    mat: np.ndarray  # [T] int32
    obj: np.ndarray  # [T] int32
    aux: np.ndarray  # [T, 4] float32

    @staticmethod
    def concat(meshes: list["Mesh"]) -> "Mesh":
        return Mesh(*(np.concatenate([getattr(m, k) for m in meshes]) for k in ("v", "uv", "mat", "obj", "aux")))

    def transformed(self, T: np.ndarray) -> "Mesh":
        v = self.v @ T[:3, :3].T + T[:3, 3]
        return Mesh(v, self.uv, self.mat, self.obj, self.aux)

    def __len__(self) -> int:
        return len(self.mat)


@dataclass
class Objects:
    """Per-object shading parameters, instance ids (0 = none) and lidar classes."""

    params: list[np.ndarray] = field(default_factory=list)
    inst: list[int] = field(default_factory=list)
    cls: list[int] = field(default_factory=list)

    def add(self, params: np.ndarray, inst: int = 0, cls: int = M.CLASS_BACKGROUND) -> int:
        p = np.zeros(M.P, dtype=np.float32)
        p[: len(params)] = params
        self.params.append(p)
        self.inst.append(inst)
        self.cls.append(cls)
        return len(self.params) - 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.stack(self.params), np.asarray(self.inst, np.int32), np.asarray(self.cls, np.int32)


class MeshBuilder:
    def __init__(self) -> None:
        self._v: list[np.ndarray] = []
        self._uv: list[np.ndarray] = []
        self._mat: list[int] = []
        self._obj: list[int] = []
        self._aux: list[np.ndarray] = []

    def tri(self, a, b, c, ua, ub, uc, mat: int, obj: int, aux=(0.0, 0.0, 0.0, 0.0)) -> None:
        self._v.append(np.array([a, b, c], dtype=np.float64))
        self._uv.append(np.array([ua, ub, uc], dtype=np.float32))
        self._mat.append(mat)
        self._obj.append(obj)
        self._aux.append(np.asarray(aux, dtype=np.float32))

    def quad(self, p, uv, mat: int, obj: int, aux=(0.0, 0.0, 0.0, 0.0)) -> None:
        """Four corners counter-clockwise from outside, with their texture coordinates."""
        self.tri(p[0], p[1], p[2], uv[0], uv[1], uv[2], mat, obj, aux)
        self.tri(p[0], p[2], p[3], uv[0], uv[2], uv[3], mat, obj, aux)

    def grid(self, P: np.ndarray, UV: np.ndarray, mat: int, obj: int) -> None:
        """A quad grid from corner arrays `P [A, B, 3]`, `UV [A, B, 2]`; (a, b) order gives +normal."""
        p00, p10, p11, p01 = P[:-1, :-1], P[1:, :-1], P[1:, 1:], P[:-1, 1:]
        u00, u10, u11, u01 = UV[:-1, :-1], UV[1:, :-1], UV[1:, 1:], UV[:-1, 1:]
        n = p00.shape[0] * p00.shape[1]
        v = np.concatenate([np.stack([p00, p10, p11], -2).reshape(n, 3, 3), np.stack([p00, p11, p01], -2).reshape(n, 3, 3)])
        uv = np.concatenate([np.stack([u00, u10, u11], -2).reshape(n, 3, 2), np.stack([u00, u11, u01], -2).reshape(n, 3, 2)])
        self._v.extend(v)
        self._uv.extend(uv.astype(np.float32))
        self._mat.extend([mat] * (2 * n))
        self._obj.extend([obj] * (2 * n))
        self._aux.extend(np.zeros((2 * n, 4), np.float32))

    def hexahedron(self, T: np.ndarray, c: np.ndarray, mats, obj: int, zoff: float = 0.0, centre_uv: bool = False) -> None:
        """Eight local corners `c [8, 3]` (index ix + 2 iy + 4 iz of a box) moved by `T [4, 4]`.

        `mats` gives the material of the faces (+x, -x, +y, -y, +z, -z); -1 skips a face.
        Texture coordinates are local: vertical x-faces (y, z + zoff), y-faces (x, z + zoff),
        horizontal faces (x, y). With `centre_uv` the horizontal coordinate of a vertical face is
        measured from the face's centre and aux holds (half width, height, 0, 0).
        """
        w = c @ T[:3, :3].T + T[:3, 3]
        faces = (
            ((1, 3, 7, 5), 1), ((0, 4, 6, 2), 1), ((2, 6, 7, 3), 0), ((0, 1, 5, 4), 0), ((4, 5, 7, 6), 2), ((0, 2, 3, 1), 2),
        )
        for (idx, axis), mat in zip(faces, mats):
            if mat < 0:
                continue
            lc = c[list(idx)]
            if axis == 2:
                uv = lc[:, :2]
                aux = (0.0, 0.0, 0.0, 0.0)
            else:
                u = lc[:, axis].copy()
                if centre_uv:
                    mid = 0.5 * (u.min() + u.max())
                    u -= mid
                    aux = (0.5 * (lc[:, axis].max() - lc[:, axis].min()), lc[:, 2].max() - lc[:, 2].min(), 0.0, 0.0)
                else:
                    aux = (0.0, 0.0, 0.0, 0.0)
                uv = np.stack([u, lc[:, 2] + zoff], -1)
            self.quad(w[list(idx)], uv, mat, obj, aux)

    def box(self, T: np.ndarray, lo, hi, mats, obj: int, zoff: float = 0.0, centre_uv: bool = False) -> None:
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        c = np.array([[(lo, hi)[i & 1][0], (lo, hi)[(i >> 1) & 1][1], (lo, hi)[(i >> 2) & 1][2]] for i in range(8)])
        self.hexahedron(T, c, mats, obj, zoff, centre_uv)

    def cylinder(self, T: np.ndarray, r: float, z0: float, z1: float, sides: int, side_mat: int, cap_mat: int, obj: int, caps=(True, True)) -> None:
        """A prism around local z from z0 to z1; side uv = (arc length, z), cap uv = local (x, y)."""
        a = np.linspace(0, 2 * np.pi, sides + 1)
        ring = np.stack([r * np.cos(a), r * np.sin(a)], -1)  # [sides + 1, 2]
        R, t = T[:3, :3], T[:3, 3]

        def w(x, y, z):
            return R @ np.array([x, y, z]) + t

        for i in range(sides):
            (x0, y0), (x1, y1) = ring[i], ring[i + 1]
            self.quad([w(x0, y0, z0), w(x1, y1, z0), w(x1, y1, z1), w(x0, y0, z1)],
                      [(a[i] * r, z0), (a[i + 1] * r, z0), (a[i + 1] * r, z1), (a[i] * r, z1)], side_mat, obj, (r, 0, 0, 0))
            if caps[1]:
                self.tri(w(0, 0, z1), w(x0, y0, z1), w(x1, y1, z1), (0, 0), (x0, y0), (x1, y1), cap_mat, obj, (r, 0, 0, 0))
            if caps[0]:
                self.tri(w(0, 0, z0), w(x1, y1, z0), w(x0, y0, z0), (0, 0), (x1, y1), (x0, y0), cap_mat, obj, (r, 0, 0, 0))

    def blob(self, T: np.ndarray, radii, rng: np.random.Generator, mat: int, obj: int, jitter: float = 0.12) -> None:
        """A jittered ellipsoid (icosphere, 80 faces); uv = local (x, y) of the corners, aux = its
        centre in the world (the shader bends normals towards it for a rounded look)."""
        verts, faces = _icosphere()
        verts = verts * (1.0 + jitter * rng.uniform(-1, 1, (len(verts), 1))) * np.asarray(radii)
        w = verts @ T[:3, :3].T + T[:3, 3]
        aux = (T[0, 3], T[1, 3], T[2, 3], 1.0)
        for f in faces:
            self.tri(w[f[0]], w[f[1]], w[f[2]], verts[f[0], :2], verts[f[1], :2], verts[f[2], :2], mat, obj, aux)

    def build(self) -> Mesh:
        if not self._mat:
            return Mesh(np.zeros((0, 3, 3)), np.zeros((0, 3, 2), np.float32), np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, 4), np.float32))
        return Mesh(np.stack(self._v), np.stack(self._uv), np.asarray(self._mat, np.int32), np.asarray(self._obj, np.int32), np.stack(self._aux))


def _icosphere() -> tuple[np.ndarray, np.ndarray]:
    t = (1.0 + 5**0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6), (7, 1, 8),
         (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(p, float) / np.linalg.norm(p) for p in v]
    cache: dict[tuple[int, int], int] = {}

    def mid(a: int, b: int) -> int:
        key = (min(a, b), max(a, b))
        if key not in cache:
            m = verts[a] + verts[b]
            verts.append(m / np.linalg.norm(m))
            cache[key] = len(verts) - 1
        return cache[key]

    faces = []
    for a, b, c in f:
        ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
        faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
    return np.array(verts), np.array(faces)


# --- the static world ----------------------------------------------------------------------------


def build_static(world: World, objects: Objects) -> Mesh:
    """Road, sidewalks, curbs, lots, far ground, buildings, trees and poles in world coordinates."""
    b = MeshBuilder()
    road = world.road
    line = road.line
    ground_obj = objects.add(M.linear(road.asphalt))
    s = np.arange(road.s_min, road.s_max + 1e-6, 2.0)
    ch = road.curb_height
    k = abs(line.curvature)
    lot_far = min(road.lot_depth + 60.0, 0.6 / k - 20.0) if k > 0 else road.lot_depth + 60.0
    # road (lanes and parking) and the two sidewalks, lots and curbs
    _strip(b, line, s, np.linspace(road.l_right_curb, road.l_left_curb, 3), 0.0, M.ROAD, ground_obj)
    for side, curb in ((-1, road.l_right_curb), (1, road.l_left_curb)):
        outer = curb + side * road.sidewalk_width
        lot_end = side * max(abs(outer) + 5.0, lot_far)
        _strip(b, line, s, np.sort([curb, outer]), ch, M.SIDEWALK, ground_obj)
        _strip(b, line, s, np.sort([outer, lot_end]), ch, M.LOT, ground_obj)
        # vertical curb face, facing the road (the grid's normal is ds x dz = -l, so flip the right curb's)
        P = np.stack([line.point(s, curb, 0.0), line.point(s, curb, ch)], 1)  # [S, 2, 3]
        UV = np.stack([np.stack([s, np.zeros_like(s)], -1), np.stack([s, np.full_like(s, ch)], -1)], 1)
        if side < 0:
            P, UV = P[:, ::-1], UV[:, ::-1]
        b.grid(P, UV, M.CURB, ground_obj)
    # a far ground plane below everything, for the horizon between and beyond the blocks
    centre = line.point(0.5 * (road.s_min + road.s_max), 0.0)
    g = np.linspace(-1000, 1000, 21)
    gx, gy = np.meshgrid(g + centre[0], g + centre[1], indexing="ij")
    P = np.stack([gx, gy, np.full_like(gx, -0.5)], -1)
    b.grid(P, P[..., :2], M.FAR_GROUND, objects.add(M.linear(road.lot) * 0.8))
    for bld in world.buildings:
        _building(b, line, bld, objects)
    for tree in world.trees:
        _tree(b, line, tree, objects, ch)
    for pole in world.poles:
        _pole(b, line, pole, objects, ch)
    return b.build()


def _strip(b: MeshBuilder, line, s: np.ndarray, ls: np.ndarray, z: float, mat: int, obj: int) -> None:
    S, L = np.meshgrid(s, ls, indexing="ij")
    P = line.point(S, L, z)
    b.grid(P, np.stack([S, L], -1), mat, obj)


def _building(b: MeshBuilder, line, bld: Building, objects: Objects) -> None:
    p = np.zeros(M.P)
    p[0:3] = M.linear(bld.wall)
    p[M.B_TRIM:M.B_TRIM + 3] = M.linear(bld.trim)
    p[M.B_GLASS:M.B_GLASS + 3] = M.linear(bld.glass)
    p[M.B_SHOP:M.B_SHOP + 3] = M.linear(bld.shop)
    p[M.B_ROOF:M.B_ROOF + 3] = M.linear(bld.roof)
    p[[M.B_PATTERN, M.B_FLOOR, M.B_WIN_W, M.B_WIN_H, M.B_WIN_SP, M.B_LIT, M.B_SEED, M.B_HEIGHT]] = [
        bld.pattern, bld.floor_height, bld.window_width, bld.window_height, bld.window_spacing, bld.lit, (bld.seed % 997) / 997.0, bld.height,
    ]
    obj = objects.add(p)
    T = line.frame(bld.s, bld.l, 0.0)
    hx, hy = bld.length / 2, bld.depth / 2
    b.box(T, (-hx, -hy, -0.3), (hx, hy, bld.height), (M.FACADE,) * 4 + (M.ROOF, -1), obj, zoff=0.3, centre_uv=True)
    # a parapet band on the roof edge would be hidden from the street; an awning over the shop front is not
    if bld.seed % 3 == 0:
        face = -1 if bld.l > 0 else 1  # the facade facing the road
        y0 = face * hy
        z = bld.floor_height * 1.15 - 0.45
        b.box(T, (-hx + 1.0, min(y0, y0 + face * 1.3), z), (hx - 1.0, max(y0, y0 + face * 1.3), z + 0.35), (M.AWNING,) * 5 + (M.AWNING,), obj)


def _tree(b: MeshBuilder, line, tree: Tree, objects: Objects, ground: float) -> None:
    rng = np.random.default_rng(tree.seed)
    obj = objects.add(np.concatenate([M.linear(tree.leaves), [(tree.seed % 997) / 997.0]]))
    T = line.frame(tree.s, tree.l, ground, float(rng.uniform(0, 2 * np.pi)))
    b.cylinder(T, tree.trunk_radius, 0.0, tree.trunk_height + 0.6 * tree.crown_height, 7, M.BARK, M.BARK, obj, caps=(False, False))
    Tc = T.copy()
    Tc[:3, 3] = T[:3, 3] + np.array([0, 0, tree.trunk_height + tree.crown_height * 0.85])
    b.blob(Tc, (tree.crown_radius, tree.crown_radius * float(rng.uniform(0.85, 1.0)), tree.crown_height), rng, M.LEAVES, obj)
    # a second, smaller blob breaks the ellipsoid's outline
    Tc2 = Tc.copy()
    off = rng.uniform(-0.5, 0.5, 3) * np.array([tree.crown_radius, tree.crown_radius, tree.crown_height])
    Tc2[:3, 3] = Tc[:3, 3] + Tc[:3, :3] @ off
    b.blob(Tc2, (0.7 * tree.crown_radius,) * 2 + (0.7 * tree.crown_height,), rng, M.LEAVES, obj, 0.15)


def _pole(b: MeshBuilder, line, pole: Pole, objects: Objects, ground: float) -> None:
    col = M.linear(pole.colour)
    obj = objects.add(np.concatenate([col, [pole.sign]]))
    T = line.frame(pole.s, pole.l, ground)
    inward = -pole.side  # towards the road, in local y
    if pole.kind == 0:  # street lamp: pole, arm over the road, lamp head
        b.cylinder(T, 0.09, 0.0, pole.height, 8, M.METAL, M.METAL, obj, caps=(False, True))
        y1 = inward * 1.9
        b.box(T, (-0.05, min(0, y1), pole.height - 0.12), (0.05, max(0, y1), pole.height - 0.02), (M.METAL,) * 6, obj)
        b.box(T, (-0.18, min(y1, y1 - inward * 0.6), pole.height - 0.25), (0.18, max(y1, y1 - inward * 0.6), pole.height - 0.05),
              (M.METAL,) * 5 + (M.LAMP,), obj)
    elif pole.kind == 1:  # sign on a thin post, facing the traffic of its side
        b.cylinder(T, 0.04, 0.0, pole.height, 6, M.METAL, M.METAL, obj, caps=(False, True))
        # the right-side sign faces the ego's traffic (-x), the left-side one the oncoming traffic (+x)
        face = (M.METAL, M.SIGN_FACE) if pole.side < 0 else (M.SIGN_FACE, M.METAL)
        Ts = T.copy()
        Ts[:3, 3] = T[:3, :3] @ np.array([0.0, 0.0, pole.height]) + T[:3, 3]
        if pole.sign == 2:  # diamond: the plate turned 45 degrees about its normal
            c, s_ = np.cos(np.pi / 4), np.sin(np.pi / 4)
            Ts[:3, :3] = Ts[:3, :3] @ np.array([[1, 0, 0], [0, c, -s_], [0, s_, c]])
        hw = 0.38 if pole.sign != 1 else 0.32
        hh = 0.38 if pole.sign != 1 else 0.45
        b.box(Ts, (-0.05, -hw, -hh), (-0.02, hw, hh), face + (M.METAL,) * 4, obj)
    else:  # traffic light: pole, arm, signal head facing the oncoming traffic of its side
        b.cylinder(T, 0.12, 0.0, pole.height, 8, M.METAL, M.METAL, obj, caps=(False, True))
        y1 = inward * 4.5
        b.box(T, (-0.06, min(0, y1), pole.height - 0.35), (0.06, max(0, y1), pole.height - 0.2), (M.METAL,) * 6, obj)
        # the right-side signal (side -1) stands after the crossing and faces the ego (-x)
        face = (M.METAL, M.SIGNAL) if pole.side < 0 else (M.SIGNAL, M.METAL)
        b.box(T, (-0.15, y1 - 0.17, pole.height - 1.35), (0.15, y1 + 0.17, pole.height - 0.3), face + (M.METAL,) * 4, obj,
              zoff=-(pole.height - 1.35), centre_uv=True)


# --- vehicles --------------------------------------------------------------------------------


def vehicle_params(v: Vehicle) -> np.ndarray:
    """Shading parameters of a vehicle; also fixes the cabin extent used by `build_vehicle`."""
    L, W, H = v.length, v.width, v.height
    _, _, _, cab_frac, cab_start, hood = CAR_TYPES[v.kind]
    scale = H / CAR_TYPES[v.kind][2]
    p = np.zeros(M.P)
    p[0:3] = M.linear(v.colour)
    x0 = -L / 2 + cab_start * L
    p[[M.V_LEN, M.V_WID, M.V_HGT, M.V_HOOD, M.V_CAB0, M.V_CAB1, M.V_KIND, M.V_WHEEL_X]] = [
        L, W, H, hood * scale, x0, x0 + cab_frac * L, list(CAR_TYPES).index(v.kind), L / 2 - 0.85 * scale,
    ]
    return p


def build_vehicle(v: Vehicle, obj: int, params: np.ndarray) -> Mesh:
    """A car in its box frame: lower body, a cabin with sloped glass, four wheels."""
    b = MeshBuilder()
    L, W, H = v.length, v.width, v.height
    hood, x0, x1, wx = (float(params[i]) for i in (M.V_HOOD, M.V_CAB0, M.V_CAB1, M.V_WHEEL_X))
    I = np.eye(4)
    zb = -H / 2  # ground in the box frame
    r = 0.33 * H / CAR_TYPES[v.kind][2] if v.kind != "van" else 0.36
    clearance = 0.22
    # lower body from the ground clearance to the hood line
    b.box(I, (-L / 2, -W / 2, zb + clearance), (L / 2, W / 2, zb + hood),
          (M.CAR_FRONT, M.CAR_BACK, M.CAR_SIDE, M.CAR_SIDE, M.CAR_TOP, M.CAR_UNDER), obj, zoff=H / 2)
    # cabin: a hexahedron narrowing to the roof, sloped windscreen and rear window
    slope_f = 0.32 * (x1 - x0) if v.kind != "van" else 0.12 * (x1 - x0)
    slope_b = 0.18 * (x1 - x0) if v.kind != "van" else 0.02 * (x1 - x0)
    wt = W / 2 - 0.12
    zc0, zc1 = zb + hood, zb + H
    c = np.array([
        [x0, -W / 2 + 0.04, zc0], [x1, -W / 2 + 0.04, zc0], [x0, W / 2 - 0.04, zc0], [x1, W / 2 - 0.04, zc0],
        [x0 + slope_b, -wt, zc1], [x1 - slope_f, -wt, zc1], [x0 + slope_b, wt, zc1], [x1 - slope_f, wt, zc1],
    ])
    b.hexahedron(I, c, (M.CABIN_FRONT, M.CABIN_BACK, M.CABIN_SIDE, M.CABIN_SIDE, M.CABIN_TOP, -1), obj, zoff=H / 2)
    # wheels: prisms around y, a little inside the body's outline
    for sx in (-1, 1):
        for sy in (-1, 1):
            Tw = np.eye(4)
            Tw[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]  # local z -> y
            Tw[:3, 3] = [sx * wx, sy * (W / 2 - 0.13), zb + r]
            b.cylinder(Tw, r, -0.11, 0.11, 12, M.TIRE, M.HUB, obj)
    return b.build()
