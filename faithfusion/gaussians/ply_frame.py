"""Which frame a PLY's positions are in: the global (dataset) frame or a recentred local one.

A driving dataset's world frame is often kilometres from the origin (UTM, a map frame), so a PLY
written there opens on empty space in a standard viewer and loses float32 precision (0.25 m steps
at 3,000 km). By default FaithFusion writes `point_cloud.ply` in a *local* frame: the world frame
moved by a rounded origin and rotated not at all,

    world = file + origin        (metres, or the dataset's world units)

The origin is recorded in the PLY header as comment lines that any PLY reader shows and
`load_ply` reads back:

    comment faithfusion_frame local
    comment faithfusion_origin 453120 3215870 12
    comment faithfusion_note world = file + origin (world units, no rotation)

A PLY written in the global frame says `comment faithfusion_frame global`; a PLY without these
lines (another tool's) is read as global.
"""

from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor

from faithfusion.errors import UserError

FRAME_KEY = "faithfusion_frame"
ORIGIN_KEY = "faithfusion_origin"
NOTE = "faithfusion_note world = file + origin (world units, no rotation)"


class PlyFrameError(UserError, ValueError):
    """A PLY whose faithfusion frame comments cannot be read."""


def local_origin(centres: Tensor, step: float = 1.0) -> tuple[float, float, float]:
    """The mean of `centres [N, 3]` (world units) rounded to a multiple of `step` per axis."""
    if centres.ndim != 2 or centres.shape[1] != 3 or centres.shape[0] == 0:
        raise ValueError(f"local_origin: expected centres [N, 3] with N >= 1, got {tuple(centres.shape)}")
    mean = centres.double().mean(dim=0)
    out = tuple(float(round(float(v) / step) * step) + 0.0 for v in mean)  # + 0.0: no -0.0 in the header
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"local_origin: the camera centres are not finite (mean {mean.tolist()})")
    return out  # type: ignore[return-value]


def frame_comments(origin: Sequence[float] | None) -> list[str]:
    """The header comment lines for a file written at `origin` (None: the global frame)."""
    if origin is None:
        return [f"{FRAME_KEY} global"]
    if len(origin) != 3 or not all(math.isfinite(float(v)) for v in origin):
        raise ValueError(f"PLY origin must be 3 finite numbers, got {origin}")
    return [f"{FRAME_KEY} local", f"{ORIGIN_KEY} " + " ".join(repr(float(v)) for v in origin), NOTE]


def parse_frame_comments(comments: Sequence[str], source: str = "PLY") -> tuple[float, float, float] | None:
    """The origin recorded in `comments` (None: global frame, or no faithfusion lines at all)."""
    frame, origin = None, None
    for line in comments:
        words = line.split()
        if not words:
            continue
        if words[0] == FRAME_KEY:
            frame = words[1] if len(words) > 1 else ""
        elif words[0] == ORIGIN_KEY:
            try:
                origin = tuple(float(w) for w in words[1:])
            except ValueError:
                origin = ()
            if len(origin) != 3 or not all(math.isfinite(v) for v in origin):
                raise PlyFrameError(f"{source}: unreadable '{ORIGIN_KEY}' comment {line!r} (want three finite numbers)")
    if frame is None or frame == "global":
        return None
    if frame != "local":
        raise PlyFrameError(f"{source}: unknown '{FRAME_KEY}' {frame!r} (want 'local' or 'global')")
    if origin is None:
        raise PlyFrameError(f"{source}: '{FRAME_KEY} local' without a '{ORIGIN_KEY} X Y Z' comment")
    return origin  # type: ignore[return-value]
