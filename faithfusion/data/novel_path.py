"""Novel cameras between sparse training views: the sparse-view protocol's stand-in for the lane shift.

The fusion methods place their novel cameras with `scene.shifted_camera(i, metres)` (a lane shift of `metres`
sideways). A scene that carries an `InterpolatedPath` gets these cameras from the path instead: a shift of s
"path metres" from training frame i moves the camera toward the next training view in capture order (s > 0) or
the previous one (s < 0) by the fraction |s| / 12 of the way (SLERP rotation, linear centre), so that 6 path
metres, the largest shift of every method's schedule, is the midpoint between two training views: the pose
farthest from both. At the two ends of the capture, where that neighbour does not exist, the camera leaves the
capture by the same fraction, mirrored (away from the other neighbour). A path metre is 1/12 of the mean distance
between neighbouring training cameras (`metres_to_scene`), so a method's step in metres (Difix3D's 0.5 m per
round) keeps its share of the way. docs/sparse_views.md says why this path and not GenFusion's ellipse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from faithfusion.cameras import Camera, interpolate_pose

FULL_GAP_METRES = 12.0
"""Path metres from one training view to the next: 6 m (every schedule's largest shift) is the midpoint."""


@dataclass(frozen=True)
class InterpolatedPath:
    """The training frames in capture order and the scene length of one path metre."""

    order: tuple[int, ...]
    """Training frame indices, sorted (capture order)."""
    unit: float
    """Scene units per path metre: the mean gap between neighbouring training cameras / FULL_GAP_METRES."""

    @classmethod
    def through(cls, cameras: dict[int, Camera]) -> "InterpolatedPath":
        """The path through the training cameras `{frame index: camera}` (at least two)."""
        order = tuple(sorted(cameras))
        if len(order) < 2:
            raise ValueError(f"InterpolatedPath: needs at least 2 training views, got {len(order)}")
        centres = torch.stack([cameras[i].center.double().cpu() for i in order])  # [N, 3]
        gap = float((centres[1:] - centres[:-1]).norm(dim=-1).mean())
        return cls(order, max(gap, 1e-9) / FULL_GAP_METRES)

    def metres_to_scene(self, metres: float) -> float:
        return metres * self.unit

    def neighbours(self, index: int) -> tuple[int | None, int | None]:
        """The training frames before and after frame `index` in capture order (None past an end)."""
        before = [i for i in self.order if i < index]
        after = [i for i in self.order if i > index]
        return (before[-1] if before else None), (after[0] if after else None)

    def camera(self, base: Camera, index: int, metres: float, neighbour_camera) -> Camera:
        """`base` (frame `index`'s camera) moved `metres` path metres along the path; `neighbour_camera(j)` gives
        frame j's camera at the same scale."""
        if metres == 0.0:
            return base
        t = abs(metres) / FULL_GAP_METRES
        before, after = self.neighbours(index)
        toward, sign = (after, 1.0) if metres > 0 else (before, 1.0)
        if toward is None:  # past an end: mirror the step away from the other neighbour
            toward, sign = (before if metres > 0 else after), -1.0
        c2w = interpolate_pose(base.camtoworld.cpu(), neighbour_camera(toward).camtoworld.cpu(), sign * t)
        return base.with_camtoworld(c2w.to(base.viewmat.device))
