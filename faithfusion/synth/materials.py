"""Which material is a triangle, and where are an object's shading parameters? Ids and layouts
shared by the mesh builder (writes them) and the shader (reads them).

Colours in the world layout are display (sRGB-like) values; `linear` converts them once, and all
shading happens in linear radiance.
"""

from __future__ import annotations

import numpy as np

# --- material ids (one per triangle) -----------------------------------------------------------
ROAD, SIDEWALK, CURB, LOT, FAR_GROUND = 0, 1, 2, 3, 4
FACADE, ROOF = 5, 6
CAR_SIDE, CAR_FRONT, CAR_BACK, CAR_TOP, CAR_UNDER = 7, 8, 9, 10, 11
CABIN_SIDE, CABIN_FRONT, CABIN_BACK, CABIN_TOP = 12, 13, 14, 15
TIRE, HUB = 16, 17
BARK, LEAVES = 18, 19
METAL, SIGN_FACE, LAMP, SIGNAL = 20, 21, 22, 23
AWNING = 24
N_MATERIALS = 25

GROUND_MATERIALS = (ROAD, SIDEWALK, CURB, LOT, FAR_GROUND)

# lidar intensity per material (a rough reflectance); lane paint is raised in the shader's lidar pass
INTENSITY = np.full(N_MATERIALS, 0.15, dtype=np.float32)
INTENSITY[[ROAD]] = 0.08
INTENSITY[[SIDEWALK, CURB]] = 0.25
INTENSITY[[LOT, FAR_GROUND]] = 0.2
INTENSITY[[FACADE, ROOF, AWNING]] = 0.3
INTENSITY[[CAR_SIDE, CAR_FRONT, CAR_BACK, CAR_TOP, CABIN_TOP]] = 0.35
INTENSITY[[CABIN_SIDE, CABIN_FRONT, CABIN_BACK]] = 0.05
INTENSITY[[TIRE, CAR_UNDER]] = 0.03
INTENSITY[[SIGN_FACE]] = 0.9
INTENSITY[[METAL, LAMP, SIGNAL, HUB]] = 0.4

# --- object parameter layout (float32 [P] per object) ------------------------------------------
P = 24
# every object: 0..2 base colour (linear)
COLOUR = 0
# buildings
B_TRIM, B_GLASS, B_SHOP = 3, 6, 9  # rgb each
B_ROOF = 12  # rgb
B_PATTERN, B_FLOOR, B_WIN_W, B_WIN_H, B_WIN_SP, B_LIT, B_SEED, B_HEIGHT = 15, 16, 17, 18, 19, 20, 21, 22
# vehicles: size and the cabin's extent in the box frame (x forward, z up from the ground)
V_LEN, V_WID, V_HGT, V_HOOD, V_CAB0, V_CAB1, V_KIND, V_WHEEL_X = 3, 4, 5, 6, 7, 8, 9, 10
# trees / poles / signs
T_SEED = 3
S_DESIGN = 3

# --- object classes (lidar flow class, Waymo's convention) ------------------------------------
CLASS_BACKGROUND, CLASS_VEHICLE = 0, 1


def linear(c: np.ndarray) -> np.ndarray:
    """Display colour to linear radiance (gamma 2.2)."""
    return np.power(np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0), 2.2)
