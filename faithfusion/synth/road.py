"""Where is a point of the road? The road's reference line and its (s, l) coordinates.

The reference line is the centre divider of the road (between the two directions of travel),
a constant-curvature arc (curvature 0 is a straight road) starting at the world origin with
heading 0. A point is named by its arc length `s` along the line and its lateral offset `l`
(positive to the left of the direction of increasing s). Heights are world z (ground is z = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RoadLine:
    """A constant-curvature reference line: heading(s) = curvature * s, starting at (0, 0)."""

    curvature: float  # 1/m, positive turns left

    def heading(self, s: np.ndarray | float) -> np.ndarray:
        return self.curvature * np.asarray(s, dtype=np.float64)

    def centre(self, s: np.ndarray | float) -> np.ndarray:  # [..., 2] xy of the reference line
        s = np.asarray(s, dtype=np.float64)
        k = self.curvature
        if abs(k) < 1e-9:
            return np.stack([s, np.zeros_like(s)], -1)
        return np.stack([np.sin(k * s) / k, (1.0 - np.cos(k * s)) / k], -1)

    def point(self, s: np.ndarray | float, l: np.ndarray | float, z: np.ndarray | float = 0.0) -> np.ndarray:
        """World xyz `[..., 3]` of road coordinates (s, l) at height z."""
        s, l, z = np.broadcast_arrays(np.asarray(s, np.float64), np.asarray(l, np.float64), np.asarray(z, np.float64))
        h = self.heading(s)
        c = self.centre(s)
        return np.stack([c[..., 0] - l * np.sin(h), c[..., 1] + l * np.cos(h), z], -1)

    def frame(self, s: float, l: float = 0.0, z: float = 0.0, yaw: float = 0.0) -> np.ndarray:
        """4x4 pose at (s, l, z): x along the road tangent (turned by `yaw`), y left, z up."""
        h = float(self.heading(s)) + yaw
        T = np.eye(4)
        T[:3, :3] = [[np.cos(h), -np.sin(h), 0.0], [np.sin(h), np.cos(h), 0.0], [0.0, 0.0, 1.0]]
        T[:3, 3] = self.point(s, l, z)
        return T

    def arc_scale(self, l: float) -> float:
        """Metres travelled along a parallel at offset l per metre of reference arc length."""
        return 1.0 - self.curvature * l
