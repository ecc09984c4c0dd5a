"""The lane-shift windows a video fixer sees: a lateral ramp from the captured path out to the full shift."""

from __future__ import annotations


def ramp_shifts(d: float, frames: int, ramp: int) -> list[float]:
    """Per-frame shifts (metres) of a window: `ramp` frames from 0 to d (linear), then d."""
    r = max(2, min(ramp, frames))
    return [d * min(j / (r - 1), 1.0) + 0.0 for j in range(frames)]  # + 0.0: no -0.0
