"""How does a scene look beyond its layout? Per-seed appearance: `classic` or `varied`.

`classic` is the look SynthStreet always had: `make_world` alone, unchanged byte for byte.
`varied` keeps the whole layout of the seed (road, buildings, trees, vehicles where they were, so
depth, masks, lidar geometry and boxes of parked and moving vehicles stay those of the classic
scene except for the parked vehicles' body types) and redraws from its own random stream:

- the district's palettes: walls, trims, glass, shop fronts, roofs, facade patterns and window
  grids; asphalt, sidewalk and lot colours; the season of the trees; the vehicles' colours and
  the body types of the parked ones;
- the light: sun direction and time of day (high noon to low golden-hour sun, whose colour and
  strength follow its elevation), sky colours, clouds, or an overcast day (grey sky, weak sun,
  strong ambient light);
- wet roads (a sheen that mirrors sky and sun, patchy on the asphalt), more likely when overcast;
- the camera's exposure (a partial auto-exposure for the light of the day, plus a random offset).

The stream is `default_rng((APPEARANCE_STREAM, seed))`: the same seed always looks the same, and
the layout's stream (`default_rng(seed)` in world.py) is never touched.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from faithfusion.synth.world import CAR_TYPES, WALL_COLOURS, World

Appearance = Literal["classic", "varied"]
APPEARANCES: tuple[str, ...] = ("classic", "varied")
APPEARANCE_STREAM = 0xA99E  # the first entropy word of the appearance stream (the seed is the second)

# --- palettes (display colours) -----------------------------------------------------------------------
WALL_PALETTES: dict[str, np.ndarray] = {
    "classic": WALL_COLOURS,
    "brick_district": np.array([[0.55, 0.24, 0.17], [0.62, 0.30, 0.22], [0.48, 0.20, 0.15], [0.70, 0.40, 0.28], [0.40, 0.22, 0.18],
                                [0.75, 0.60, 0.48]]),
    "mediterranean": np.array([[0.90, 0.78, 0.55], [0.85, 0.62, 0.40], [0.93, 0.88, 0.78], [0.80, 0.50, 0.35], [0.95, 0.85, 0.62],
                               [0.70, 0.45, 0.30]]),
    "modern": np.array([[0.85, 0.86, 0.86], [0.55, 0.57, 0.60], [0.30, 0.32, 0.35], [0.92, 0.92, 0.90], [0.42, 0.46, 0.50],
                        [0.68, 0.70, 0.72]]),
    "pastel": np.array([[0.85, 0.72, 0.75], [0.70, 0.82, 0.80], [0.88, 0.85, 0.65], [0.72, 0.76, 0.88], [0.92, 0.80, 0.68],
                        [0.78, 0.86, 0.70]]),
    "industrial": np.array([[0.45, 0.42, 0.38], [0.55, 0.52, 0.46], [0.36, 0.35, 0.34], [0.60, 0.48, 0.36], [0.50, 0.50, 0.52],
                            [0.40, 0.30, 0.26]]),
}
PATTERN_WEIGHTS: dict[str, tuple[float, float, float]] = {  # stucco, brick, concrete panels
    "classic": (0.25, 0.5, 0.25), "brick_district": (0.1, 0.8, 0.1), "mediterranean": (0.8, 0.1, 0.1),
    "modern": (0.15, 0.05, 0.8), "pastel": (0.7, 0.2, 0.1), "industrial": (0.2, 0.4, 0.4),
}
TRIMS = np.array([[0.9, 0.9, 0.88], [0.2, 0.2, 0.22], [0.5, 0.45, 0.4], [0.35, 0.3, 0.28], [0.62, 0.55, 0.42], [0.15, 0.22, 0.18]])
GLASS = np.array([[0.20, 0.28, 0.35], [0.15, 0.18, 0.20], [0.25, 0.33, 0.30], [0.30, 0.32, 0.40], [0.10, 0.12, 0.16], [0.35, 0.30, 0.22]])
SHOPS = np.array([[0.7, 0.1, 0.1], [0.1, 0.35, 0.2], [0.15, 0.2, 0.5], [0.85, 0.6, 0.1], [0.3, 0.3, 0.3], [0.5, 0.15, 0.45],
                  [0.1, 0.45, 0.55], [0.9, 0.9, 0.88]])
ROOFS = np.array([[0.3, 0.3, 0.32], [0.45, 0.25, 0.2], [0.5, 0.5, 0.48], [0.2, 0.22, 0.2], [0.55, 0.35, 0.25]])
SIDEWALKS = np.array([[0.62, 0.60, 0.57], [0.70, 0.66, 0.60], [0.55, 0.55, 0.56], [0.66, 0.55, 0.48], [0.78, 0.76, 0.72],
                      [0.48, 0.47, 0.46], [0.60, 0.50, 0.45]])
LOTS: dict[str, np.ndarray] = {
    "grass": np.array([[0.30, 0.40, 0.18], [0.36, 0.44, 0.22], [0.26, 0.36, 0.15]]),
    "dry": np.array([[0.55, 0.48, 0.32], [0.50, 0.44, 0.30], [0.60, 0.52, 0.36]]),
    "gravel": np.array([[0.42, 0.40, 0.34], [0.50, 0.49, 0.46], [0.35, 0.34, 0.32]]),
}
LEAVES: dict[str, np.ndarray] = {
    "summer": np.array([[0.18, 0.36, 0.12], [0.25, 0.42, 0.15], [0.14, 0.28, 0.10], [0.35, 0.42, 0.16]]),
    "spring": np.array([[0.35, 0.55, 0.18], [0.42, 0.60, 0.22], [0.30, 0.50, 0.16]]),
    "autumn": np.array([[0.65, 0.35, 0.08], [0.72, 0.55, 0.12], [0.55, 0.20, 0.08], [0.40, 0.38, 0.12], [0.75, 0.45, 0.10]]),
    "dark": np.array([[0.10, 0.22, 0.09], [0.12, 0.25, 0.12], [0.16, 0.26, 0.10]]),
}
CAR_PALETTES: dict[str, tuple[np.ndarray, np.ndarray]] = {  # colours, probabilities
    "greyscale": (np.array([[0.92, 0.92, 0.90], [0.08, 0.08, 0.09], [0.62, 0.63, 0.65], [0.35, 0.36, 0.38], [0.70, 0.08, 0.07],
                            [0.10, 0.22, 0.55]]), np.array([0.27, 0.25, 0.2, 0.18, 0.05, 0.05])),
    "colourful": (np.array([[0.70, 0.08, 0.07], [0.10, 0.22, 0.55], [0.12, 0.30, 0.20], [0.95, 0.75, 0.10], [0.85, 0.40, 0.10],
                            [0.25, 0.45, 0.70], [0.92, 0.92, 0.90], [0.45, 0.12, 0.10], [0.55, 0.20, 0.50]]), None),
    "taxi_city": (np.array([[0.95, 0.75, 0.10], [0.92, 0.92, 0.90], [0.08, 0.08, 0.09], [0.62, 0.63, 0.65]]),
                  np.array([0.35, 0.25, 0.2, 0.2])),
    "earthy": (np.array([[0.75, 0.68, 0.52], [0.45, 0.40, 0.32], [0.30, 0.35, 0.25], [0.55, 0.30, 0.20], [0.85, 0.85, 0.80]]), None),
}
PARKED_KIND_MIXES = (  # sedan, hatchback, suv, van
    (0.4, 0.25, 0.25, 0.1), (0.2, 0.5, 0.2, 0.1), (0.2, 0.15, 0.5, 0.15), (0.3, 0.2, 0.2, 0.3),
)


def _pick(rng: np.random.Generator, palette: np.ndarray, jitter: float, p: np.ndarray | None = None) -> np.ndarray:
    """One colour of `palette` (probabilities p), with a multiplicative jitter per channel."""
    c = palette[rng.choice(len(palette), p=p)] * (1.0 + jitter * rng.normal(size=3))
    return np.clip(c, 0.02, 0.98)


def _choose(rng: np.random.Generator, names, p=None) -> str:
    names = list(names)
    return names[int(rng.choice(len(names), p=p))]


def apply_appearance(world: World, appearance: str) -> World:
    """The world of its seed with `appearance`: classic returns it untouched, varied redraws its look in place."""
    if appearance == "classic":
        return world
    if appearance != "varied":
        raise ValueError(f"unknown SynthStreet appearance {appearance!r}; known: {', '.join(APPEARANCES)}")
    rng = np.random.default_rng((APPEARANCE_STREAM, int(world.seed)))
    notes: dict = {}
    _vary_light(world, rng, notes)
    _vary_materials(world, rng, notes)
    _vary_vehicles(world, rng, notes)
    _vary_ground_water_and_exposure(world, rng, notes)
    world.look.mode = "varied"
    world.look.notes = notes
    return world


def _vary_light(world: World, rng: np.random.Generator, notes: dict) -> None:
    """Sun direction and time of day, sky colours and clouds, or an overcast day."""
    sky = world.sky
    overcast = bool(rng.random() < 0.25)
    low = bool(rng.random() < 0.3)  # morning or evening light
    elev_deg = float(rng.uniform(10.0, 24.0) if low else rng.uniform(24.0, 72.0))
    azim = float(rng.uniform(0.0, 2.0 * math.pi))
    elev = math.radians(elev_deg)
    sky.sun_dir = np.array([math.cos(elev) * math.cos(azim), math.cos(elev) * math.sin(azim), math.sin(elev)])
    warm = float(np.clip((30.0 - elev_deg) / 20.0, 0.0, 1.0))  # 1 at the horizon's golden hour, 0 from 30 degrees up
    sun_tint = (1 - warm) * np.array([1.0, 0.96, 0.88]) + warm * np.array([1.0, 0.70, 0.42])
    strength = float(rng.uniform(2.6, 3.4)) * (1.0 - 0.4 * warm)
    zenith = np.array([0.16, 0.34, 0.72]) * rng.uniform(0.8, 1.15) + rng.normal(0, 0.02, 3)
    horizon = np.array([0.72, 0.82, 0.92]) * rng.uniform(0.9, 1.05) + rng.normal(0, 0.02, 3)
    horizon = (1 - 0.7 * warm) * horizon + 0.7 * warm * np.array([0.95, 0.72, 0.52])
    ambient = np.array([0.55, 0.62, 0.75]) * rng.uniform(0.7, 0.95) * (1.0 - 0.25 * warm)
    haze = float(rng.uniform(0.0, 0.5))
    cover = float(rng.uniform(0.0, 0.7))
    if overcast:
        grey = np.array([0.66, 0.68, 0.71]) * rng.uniform(0.8, 1.05)
        zenith, horizon = grey * 0.9, grey
        strength *= float(rng.uniform(0.08, 0.22))
        sun_tint = np.array([1.0, 0.98, 0.95])
        ambient = np.array([0.78, 0.80, 0.84]) * rng.uniform(1.1, 1.5)
        cover, haze = float(rng.uniform(0.88, 1.0)), 0.0
    zenith = zenith * (1 - haze) + horizon * haze
    sky.zenith, sky.horizon, sky.haze = np.clip(zenith, 0, 1), np.clip(horizon, 0, 1), np.clip(horizon * 0.8, 0, 1)
    sky.cloud_cover, sky.cloud_scale, sky.cloud_offset = cover, float(rng.uniform(0.2, 0.7)), rng.uniform(0, 100, 2)
    sky.sun_colour = sun_tint * strength
    sky.ambient = ambient
    time = "overcast" if overcast else ("low sun" if low else "day")
    notes.update({"light": time, "sun_elevation_deg": round(elev_deg, 2), "sun_azimuth_deg": round(math.degrees(azim), 2),
                  "cloud_cover": round(cover, 3)})


def _vary_materials(world: World, rng: np.random.Generator, notes: dict) -> None:
    """The district's facade palette and patterns, ground colours and the season of the trees."""
    district = _choose(rng, WALL_PALETTES)
    walls = WALL_PALETTES[district]
    pattern_p = np.array(PATTERN_WEIGHTS[district])
    lit = float(rng.uniform(0.0, 0.45))
    for b in world.buildings:
        b.wall = _pick(rng, walls, 0.08)
        b.trim = _pick(rng, TRIMS, 0.05)
        b.glass = _pick(rng, GLASS, 0.05)
        b.shop = _pick(rng, SHOPS, 0.05)
        b.roof = _pick(rng, ROOFS, 0.05)
        b.pattern = int(rng.choice(3, p=pattern_p))
        b.window_width = float(rng.uniform(0.8, 2.2))
        b.window_height = min(float(rng.uniform(1.1, 2.2)), b.floor_height - 1.1)  # under the next floor's sill
        b.window_spacing = max(float(rng.uniform(2.2, 4.2)), b.window_width + 0.6)
        b.lit = float(rng.uniform(0.0, lit))
    road = world.road
    road.asphalt = np.array([1.0, 1.0, 1.0]) * (1.0 + 0.04 * rng.normal(size=3)) * float(rng.uniform(0.14, 0.42))
    road.sidewalk = _pick(rng, SIDEWALKS, 0.05)
    ground = _choose(rng, LOTS)
    road.lot = _pick(rng, LOTS[ground], 0.08)
    road.tile = float(rng.choice([0.3, 0.4, 0.5, 0.6, 0.8]))
    season = _choose(rng, LEAVES, p=[0.45, 0.2, 0.25, 0.1])
    for t in world.trees:
        t.leaves = _pick(rng, LEAVES[season], 0.12)
    notes.update({"district": district, "ground": ground, "trees": season})


def _vary_vehicles(world: World, rng: np.random.Generator, notes: dict) -> None:
    """Vehicle colours from a palette per seed; parked vehicles get new body types (their places are kept)."""
    palette = _choose(rng, CAR_PALETTES)
    colours, p = CAR_PALETTES[palette]
    mix = PARKED_KIND_MIXES[int(rng.integers(len(PARKED_KIND_MIXES)))]
    kinds = list(CAR_TYPES)
    for v in world.vehicles:
        v.colour = _pick(rng, colours, 0.06, p)
        if v.parked:  # parked bays are 6 m or more apart and the longest type is under 5.5 m: a new type fits
            kind = kinds[int(rng.choice(len(kinds), p=mix))]
            L, W, H = CAR_TYPES[kind][:3]
            scale = float(rng.uniform(0.95, 1.05))
            v.kind, v.length, v.width, v.height = kind, L * scale, W * min(scale, 1.0), H * scale
    notes.update({"vehicles": palette})


def _vary_ground_water_and_exposure(world: World, rng: np.random.Generator, notes: dict) -> None:
    """Wet roads (likelier when overcast) and the camera's exposure for the light of the day."""
    overcast = notes["light"] == "overcast"
    wet = bool(rng.random() < (0.6 if overcast else 0.2))
    world.look.wetness = float(rng.uniform(0.4, 1.0)) if wet else 0.0
    sky = world.sky
    # a partial auto-exposure: the key light of the day (sun on a level surface + ambient) against the classic noon's
    key = float(np.mean(sky.sun_colour) * max(sky.sun_dir[2], 0.0) + np.mean(sky.ambient))
    reference = 3.0 * math.sin(math.radians(42.0)) + 0.5
    auto = (reference / max(key, 1e-3)) ** 0.6
    world.look.exposure = float(np.clip(auto * 2.0 ** rng.normal(0.0, 0.3), 0.5, 2.5))
    notes.update({"wetness": round(world.look.wetness, 3), "exposure": round(world.look.exposure, 3)})


def appearance_record(world: World) -> dict | None:
    """What scene.json records of the look (None for classic, whose scene.json is unchanged)."""
    if world.look.mode == "classic":
        return None
    return {"mode": world.look.mode, **world.look.notes}


def scene_appearance(meta: dict) -> str:
    """The appearance a generated scene was made with, from its scene.json (classic where none is recorded)."""
    rec = meta.get("appearance")
    return "classic" if rec is None else str(rec.get("mode", "classic"))
