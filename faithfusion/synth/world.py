"""What is in the world of one seed? The layout of a SynthStreet scene, drawn from numpy's Generator.

Everything random in a scene is drawn here, in a fixed order, from `np.random.default_rng(seed)`:
road (curvature, lanes, markings), buildings, trees, poles and signs, parked and moving vehicles,
sky and sun, the ego's lane and speed. Geometry and shading only read these numbers.

Lateral layout (l in metres, positive to the left of the ego's direction of travel):

    lot | sidewalk | curb | parking | forward lanes (ego side) || oncoming lanes | parking | curb | sidewalk | lot
                                     lane 0 is the rightmost     l = 0: the centre divider
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from faithfusion.synth.road import RoadLine

CAR_TYPES = {  # name: (length, width, height, cabin length fraction, cabin start fraction from the back, hood height)
    "sedan": (4.6, 1.82, 1.45, 0.48, 0.26, 0.78),
    "hatchback": (4.05, 1.76, 1.50, 0.55, 0.10, 0.82),
    "suv": (4.85, 1.95, 1.75, 0.58, 0.12, 0.98),
    "van": (5.2, 2.0, 2.05, 0.80, 0.02, 1.00),
}
CAR_COLOURS = np.array(
    [
        [0.92, 0.92, 0.90], [0.08, 0.08, 0.09], [0.62, 0.63, 0.65], [0.35, 0.36, 0.38], [0.70, 0.08, 0.07],
        [0.10, 0.22, 0.55], [0.12, 0.30, 0.20], [0.75, 0.68, 0.52], [0.95, 0.75, 0.10], [0.45, 0.12, 0.10],
        [0.25, 0.45, 0.70], [0.85, 0.40, 0.10],
    ]
)
WALL_COLOURS = np.array(
    [
        [0.62, 0.30, 0.22], [0.72, 0.42, 0.30], [0.85, 0.80, 0.70], [0.78, 0.74, 0.66], [0.60, 0.60, 0.58],
        [0.90, 0.88, 0.84], [0.55, 0.50, 0.44], [0.80, 0.65, 0.45], [0.45, 0.48, 0.52], [0.70, 0.76, 0.78],
        [0.50, 0.22, 0.18], [0.88, 0.78, 0.58],
    ]
)


@dataclass
class RoadSpec:
    line: RoadLine
    lane_width: float
    n_forward: int
    n_backward: int
    parking_width: float
    curb_height: float
    sidewalk_width: float
    lot_depth: float
    centre_style: int  # 0 double solid yellow, 1 solid + dashed yellow, 2 single dashed yellow
    dash_length: float
    dash_gap: float
    crosswalk_s: float  # nan when there is none
    s_min: float
    s_max: float
    asphalt: np.ndarray  # [3] base colour
    sidewalk: np.ndarray  # [3]
    lot: np.ndarray  # [3]
    tile: float  # sidewalk tile size (m)

    @property
    def n_lanes(self) -> int:
        return self.n_forward + self.n_backward

    @property
    def l_right_lanes(self) -> float:  # right edge of the rightmost driving lane
        return -self.n_forward * self.lane_width

    @property
    def l_left_lanes(self) -> float:
        return self.n_backward * self.lane_width

    @property
    def l_right_curb(self) -> float:
        return self.l_right_lanes - self.parking_width

    @property
    def l_left_curb(self) -> float:
        return self.l_left_lanes + self.parking_width

    def lane_centre(self, lane: int) -> float:
        """Lateral offset of the centre of `lane` (0 = rightmost, counted across both directions)."""
        return self.l_right_lanes + (lane + 0.5) * self.lane_width

    def lane_direction(self, lane: int) -> int:
        return 1 if lane < self.n_forward else -1


@dataclass
class Building:
    s: float
    l: float
    length: float  # along the road
    depth: float  # across the road
    height: float
    wall: np.ndarray  # [3]
    trim: np.ndarray  # [3]
    glass: np.ndarray  # [3]
    pattern: int  # 0 stucco, 1 brick, 2 concrete panels
    floor_height: float
    window_width: float
    window_height: float
    window_spacing: float
    shop: np.ndarray  # [3] awning / shop front colour
    roof: np.ndarray  # [3]
    lit: float  # fraction of lit windows
    seed: int


@dataclass
class Tree:
    s: float
    l: float
    trunk_height: float
    trunk_radius: float
    crown_radius: float
    crown_height: float  # vertical semi-axis
    leaves: np.ndarray  # [3]
    seed: int


@dataclass
class Pole:
    s: float
    l: float
    kind: int  # 0 street lamp, 1 sign, 2 traffic light
    height: float
    side: int  # +1 on the left sidewalk, -1 on the right
    sign: int  # sign face design (kind 1)
    colour: np.ndarray  # [3]


@dataclass
class Vehicle:
    track_id: str
    kind: str
    length: float
    width: float
    height: float
    colour: np.ndarray  # [3]
    l: float
    s0: float
    speed: float  # m/s along its heading (0 when parked)
    direction: int  # +1 along increasing s, -1 against
    yaw: float  # extra yaw (parked cars are not perfectly aligned)
    parked: bool

    def s_at(self, t: float, dt: float, line: RoadLine) -> float:
        return self.s0 + self.direction * self.speed * t * dt / line.arc_scale(self.l)

    def pose(self, t: float, dt: float, line: RoadLine) -> np.ndarray:  # [4, 4] box centre to world
        yaw = self.yaw + (0.0 if self.direction > 0 else np.pi)
        return line.frame(self.s_at(t, dt, line), self.l, 0.5 * self.height, yaw)

    def velocity(self, t: float, dt: float, line: RoadLine) -> np.ndarray:  # [3] world m/s
        T = self.pose(t, dt, line)
        return self.speed * T[:3, 0]


@dataclass
class Sky:
    zenith: np.ndarray  # [3]
    horizon: np.ndarray  # [3]
    haze: np.ndarray  # [3] seen below the horizon where nothing is hit
    cloud_cover: float  # 0 clear .. 1 overcast
    cloud_scale: float
    cloud_offset: np.ndarray  # [2]
    sun_dir: np.ndarray  # [3] unit, towards the sun
    sun_colour: np.ndarray  # [3]
    ambient: np.ndarray  # [3]


@dataclass
class Look:
    """Appearance drawn on top of the layout (faithfusion/synth/appearance.py); a classic scene keeps the defaults."""

    mode: str = "classic"  # classic | varied
    wetness: float = 0.0  # 0 dry .. 1 soaked road, curbs and sidewalks (a sheen of sky and sun)
    exposure: float = 1.0  # camera exposure: linear radiance is multiplied by this before tone mapping
    notes: dict = field(default_factory=dict)  # what was drawn (palettes, time of day), recorded in scene.json


@dataclass
class World:
    seed: int
    frames: int
    dt: float
    road: RoadSpec
    ego_lane: int
    ego_speed: float  # m/s
    buildings: list[Building] = field(default_factory=list)
    trees: list[Tree] = field(default_factory=list)
    poles: list[Pole] = field(default_factory=list)
    vehicles: list[Vehicle] = field(default_factory=list)
    sky: Sky | None = None
    dynamic: bool = False
    look: Look = field(default_factory=Look)

    @property
    def ego_l(self) -> float:
        return self.road.lane_centre(self.ego_lane)

    def ego_s(self, t: float) -> float:
        return self.ego_speed * t * self.dt / self.road.line.arc_scale(self.ego_l)

    def ego_pose(self, t: float) -> np.ndarray:  # [4, 4] vehicle-to-world, origin on the ground
        return self.road.line.frame(self.ego_s(t), self.ego_l, 0.0)


def _colour(rng: np.random.Generator, palette: np.ndarray, jitter: float = 0.05) -> np.ndarray:
    c = palette[rng.integers(len(palette))] * (1.0 + jitter * rng.normal(size=3))
    return np.clip(c, 0.02, 0.98)


def make_world(seed: int, frames: int = 40, dynamic: bool = False, max_shift: float = 6.0, dt: float = 0.1) -> World:
    """Draw the whole layout of scene `seed` (the same seed always gives the same world)."""
    rng = np.random.default_rng(seed)
    # --- road -------------------------------------------------------------------------------
    curved = rng.random() < 0.6
    curvature = float(rng.choice([-1, 1]) * rng.uniform(1 / 450, 1 / 180)) if curved else 0.0
    n_forward = int(rng.choice([3, 3, 4]))
    n_backward = int(rng.choice([2, 3])) if n_forward == 3 else 2
    ego_lane = 2 if n_forward == 3 else int(rng.choice([2, 3]))
    ego_speed = float(rng.uniform(8.5, 11.5))
    drive = ego_speed * dt * max(frames - 1, 1)
    lane_width = 3.5
    road = RoadSpec(
        line=RoadLine(curvature),
        lane_width=lane_width,
        n_forward=n_forward,
        n_backward=n_backward,
        parking_width=float(rng.uniform(2.3, 2.7)),
        curb_height=float(rng.uniform(0.12, 0.18)),
        sidewalk_width=float(rng.uniform(3.0, 5.0)),
        lot_depth=45.0,
        centre_style=int(rng.integers(3)),
        dash_length=float(rng.choice([3.0, 3.0, 4.0])),
        dash_gap=float(rng.choice([6.0, 6.0, 9.0])),
        crosswalk_s=float(rng.uniform(5.0, drive + 60.0)) if rng.random() < 0.6 else float("nan"),
        s_min=-70.0,
        s_max=drive + 230.0,
        asphalt=np.array([1.02, 1.0, 0.97]) * float(rng.uniform(0.2, 0.33)),
        sidewalk=_colour(rng, np.array([[0.62, 0.60, 0.57], [0.70, 0.66, 0.60], [0.55, 0.55, 0.56], [0.66, 0.55, 0.48]])),
        lot=_colour(rng, np.array([[0.30, 0.40, 0.18], [0.42, 0.40, 0.34], [0.36, 0.44, 0.22]])),
        tile=float(rng.choice([0.4, 0.5, 0.6])),
    )
    world = World(seed=seed, frames=frames, dt=dt, road=road, ego_lane=ego_lane, ego_speed=ego_speed, dynamic=dynamic)
    line = road.line
    # --- buildings along both sides ------------------------------------------------------------
    height_scale = float(rng.uniform(0.6, 1.6))
    for side in (-1, 1):
        curb = road.l_right_curb if side < 0 else road.l_left_curb
        outer = abs(curb) + road.sidewalk_width
        s = road.s_min
        while s < road.s_max:
            length = float(rng.uniform(8.0, 26.0))
            gap = 0.0 if rng.random() < 0.55 else float(rng.uniform(2.0, 9.0))
            setback = float(rng.uniform(0.4, 3.0))
            depth = float(rng.uniform(10.0, 20.0))
            floor_h = float(rng.uniform(3.0, 3.7))
            floors = int(rng.integers(2, 11) * height_scale + 1)
            height = floor_h * floors + 1.0 + float(rng.uniform(0.0, 1.5))
            sc = s + gap + length / 2
            if sc - length / 2 < road.s_max:
                world.buildings.append(
                    Building(
                        s=sc, l=side * (outer + setback + depth / 2), length=length, depth=depth, height=height,
                        wall=_colour(rng, WALL_COLOURS, 0.08), trim=_colour(rng, np.array([[0.9, 0.9, 0.88], [0.2, 0.2, 0.22], [0.5, 0.45, 0.4], [0.35, 0.3, 0.28]])),
                        glass=_colour(rng, np.array([[0.20, 0.28, 0.35], [0.15, 0.18, 0.20], [0.25, 0.33, 0.30], [0.30, 0.32, 0.40]])),
                        pattern=int(rng.choice([0, 1, 1, 2])), floor_height=floor_h,
                        window_width=float(rng.uniform(0.9, 1.8)), window_height=float(rng.uniform(1.2, 2.0)),
                        window_spacing=float(rng.uniform(2.4, 4.0)),
                        shop=_colour(rng, np.array([[0.7, 0.1, 0.1], [0.1, 0.35, 0.2], [0.15, 0.2, 0.5], [0.85, 0.6, 0.1], [0.3, 0.3, 0.3]])),
                        roof=_colour(rng, np.array([[0.3, 0.3, 0.32], [0.45, 0.25, 0.2], [0.5, 0.5, 0.48]])),
                        lit=float(rng.uniform(0.0, 0.3)), seed=int(rng.integers(1 << 30)),
                    )
                )
            s += gap + length
    # --- trees, lamps, signs on the sidewalks --------------------------------------------------
    tree_spacing = float(rng.uniform(8.0, 16.0))
    tree_prob = float(rng.uniform(0.3, 0.95))
    lamp_spacing = float(rng.uniform(22.0, 34.0))
    leaves = np.array([[0.18, 0.36, 0.12], [0.25, 0.42, 0.15], [0.14, 0.28, 0.10], [0.35, 0.42, 0.16]])
    for side in (-1, 1):
        curb = road.l_right_curb if side < 0 else road.l_left_curb
        s = road.s_min + float(rng.uniform(0, tree_spacing))
        while s < road.s_max:
            if rng.random() < tree_prob and not _near_crosswalk(road, s, 6.0):
                crown = float(rng.uniform(1.6, 3.2))
                world.trees.append(
                    Tree(
                        s=s + float(rng.uniform(-1, 1)), l=curb + side * float(rng.uniform(0.9, 1.4)),
                        trunk_height=float(rng.uniform(2.0, 3.4)), trunk_radius=float(rng.uniform(0.12, 0.24)),
                        crown_radius=crown, crown_height=crown * float(rng.uniform(0.9, 1.5)),
                        leaves=_colour(rng, leaves, 0.12), seed=int(rng.integers(1 << 30)),
                    )
                )
            s += tree_spacing * float(rng.uniform(0.8, 1.2))
        s = road.s_min + float(rng.uniform(0, lamp_spacing))
        while s < road.s_max:
            world.poles.append(Pole(s=s, l=curb + side * 0.45, kind=0, height=float(rng.uniform(6.5, 8.5)), side=side, sign=0,
                                    colour=_colour(rng, np.array([[0.35, 0.36, 0.38], [0.15, 0.16, 0.15], [0.55, 0.56, 0.55]]))))
            s += lamp_spacing
        for _ in range(int(rng.integers(2, 6))):
            s = float(rng.uniform(road.s_min + 20, road.s_max - 60))
            world.poles.append(Pole(s=s, l=curb + side * 0.4, kind=1, height=float(rng.uniform(2.2, 2.8)), side=side,
                                    sign=int(rng.integers(4)), colour=np.array([0.55, 0.56, 0.57])))
    if np.isfinite(road.crosswalk_s):
        for side in (-1, 1):
            curb = road.l_right_curb if side < 0 else road.l_left_curb
            s = road.crosswalk_s - side * 4.5  # the signal before the crossing for each direction
            world.poles.append(Pole(s=s, l=curb + side * 0.5, kind=2, height=5.5, side=side, sign=0, colour=np.array([0.2, 0.2, 0.2])))
    # --- parked vehicles -----------------------------------------------------------------------
    kinds = list(CAR_TYPES)
    park_prob = float(rng.uniform(0.3, 0.85))
    track = 0
    for side in (-1, 1):
        l_park = (road.l_right_lanes - road.parking_width / 2) if side < 0 else (road.l_left_lanes + road.parking_width / 2)
        s = road.s_min + float(rng.uniform(0, 4))
        while s < road.s_max - 10:
            pitch = float(rng.uniform(6.0, 7.5))
            if rng.random() < park_prob and not _near_crosswalk(road, s, 9.0):
                world.vehicles.append(_vehicle(rng, kinds, f"parked_{track:03d}", l_park + side * float(rng.uniform(-0.15, 0.1)),
                                               s, 0.0, -side, float(rng.normal(0, 0.02)), True))
                track += 1
            s += pitch
    # --- moving vehicles -----------------------------------------------------------------------
    if dynamic:
        _add_traffic(world, rng, kinds, max_shift)
    # --- sky and sun -------------------------------------------------------------------------------
    elev = np.radians(rng.uniform(22, 62))
    azim = rng.uniform(0, 2 * np.pi)
    haze_amount = float(rng.uniform(0.0, 0.5))
    zenith = np.array([0.16, 0.34, 0.72]) * rng.uniform(0.85, 1.15) + rng.normal(0, 0.02, 3)
    horizon = np.array([0.72, 0.82, 0.92]) * rng.uniform(0.9, 1.05) + rng.normal(0, 0.02, 3)
    zenith = zenith * (1 - haze_amount) + horizon * haze_amount
    world.sky = Sky(
        zenith=np.clip(zenith, 0, 1), horizon=np.clip(horizon, 0, 1), haze=np.clip(horizon * 0.8, 0, 1),
        cloud_cover=float(rng.uniform(0.1, 0.75)), cloud_scale=float(rng.uniform(0.25, 0.6)),
        cloud_offset=rng.uniform(0, 100, 2),
        sun_dir=np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)]),
        sun_colour=np.array([1.0, 0.96, 0.88]) * rng.uniform(2.6, 3.4),
        ambient=np.array([0.55, 0.62, 0.75]) * rng.uniform(0.7, 0.95),
    )
    return world


def _near_crosswalk(road: RoadSpec, s: float, margin: float) -> bool:
    return bool(np.isfinite(road.crosswalk_s) and abs(s - road.crosswalk_s) < margin)


def _vehicle(rng, kinds, track_id, l, s, speed, direction, yaw, parked) -> Vehicle:
    kind = kinds[int(rng.choice(len(kinds), p=[0.4, 0.25, 0.25, 0.1]))]
    L, W, H = CAR_TYPES[kind][:3]
    scale = float(rng.uniform(0.95, 1.05))
    colour = _colour(rng, CAR_COLOURS, 0.06)
    return Vehicle(track_id, kind, L * scale, W * min(scale, 1.0), H * scale, colour, l, s, speed, direction, yaw, parked)


def _add_traffic(world: World, rng: np.random.Generator, kinds: list[str], max_shift: float) -> None:
    """Moving vehicles in the lanes, never overlapping each other nor the places the shifted ego takes."""
    road, line = world.road, world.road.line
    T = world.frames
    ego_s = np.array([world.ego_s(t) for t in range(T)])
    count = int(rng.integers(6, 14))
    tries = 0
    track = 0
    if rng.random() < 0.5:  # a lead car at the ego's speed, far enough ahead that no shifted ego meets it
        world.vehicles.append(_vehicle(rng, kinds, "moving_lead", world.ego_l, float(rng.uniform(12.0, 24.0)), world.ego_speed, 1, 0.0, False))
    while track < count and tries < 400:
        tries += 1
        lane = int(rng.integers(road.n_lanes))
        if lane == world.ego_lane:
            continue
        direction = road.lane_direction(lane)
        l = road.lane_centre(lane)
        speed = float(rng.uniform(6.0, 14.0))
        s0 = float(rng.uniform(-40.0, ego_s[-1] + 90.0))
        v = _vehicle(rng, kinds, f"moving_{track:03d}", l, s0, speed, direction, 0.0, False)
        if v.width > 1.9 and abs(l - world.ego_l) > road.lane_width * 1.5:
            v.width = 1.9
        vs = np.array([v.s_at(t, world.dt, line) for t in range(T)])
        ok = bool(vs.min() > road.s_min + 0.5 * v.length and vs.max() < road.s_max - 0.5 * v.length)  # stays on the built road
        for o in world.vehicles if ok else []:
            if abs(o.l - l) > 0.5 * road.lane_width:
                continue
            os_ = np.array([o.s_at(t, world.dt, line) for t in range(T)])
            if np.min(np.abs(os_ - vs)) < 0.5 * (o.length + v.length) + 3.0:
                ok = False
                break
        lateral = abs(l - world.ego_l)
        if ok and lateral < max_shift + 0.5 * v.width + 0.5:
            ok = np.min(np.abs(vs - ego_s)) > 0.5 * v.length + 7.0
        if ok:
            world.vehicles.append(v)
            track += 1
