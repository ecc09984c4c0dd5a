"""How big is a batch scene? Named sizes of the synthesised scene and of its training budget."""

from __future__ import annotations

from dataclasses import dataclass

from faithfusion.errors import UserError


class SizeError(UserError, ValueError):
    """An unknown --size name."""


@dataclass(frozen=True)
class SceneSize:
    """A SynthStreet scene's size and the budget of one run on it (the demo's quick and full sizes, and a tiny one)."""

    frames: int
    width: int
    height: int
    shifts: tuple[float, ...]
    """Lane shifts (metres) rendered as ground truth and evaluated."""
    steps: int
    max_points: int
    random_points: int
    frame_stride: int
    """Evaluate shifted views of every k-th timestep."""
    fuse_view_stride: int
    """FaithFusion: fuse every k-th captured frame per round."""
    cameras: tuple[str, ...] = ("front", "front_left", "front_right")


SIZES: dict[str, SceneSize] = {
    # the quick and full sizes are `faithfusion demo --quick` and `faithfusion demo` (commands/demo.py demo_sizes)
    "quick": SceneSize(16, 192, 128, (1.0, 3.0, 6.0), 1000, 10_000, 2_000, 3, 3),
    "full": SceneSize(40, 480, 320, (1.0, 2.0, 3.0, 4.0, 5.0, 6.0), 7000, 300_000, 50_000, 2, 1),
    # tests and smoke runs: seconds per scene on one CPU thread
    "tiny": SceneSize(4, 48, 32, (2.0,), 12, 2_000, 200, 2, 2, ("front",)),
}


def scene_size(name: str) -> SceneSize:
    if name not in SIZES:
        raise SizeError(f"--size {name!r}: unknown; choose one of {', '.join(SIZES)}")
    return SIZES[name]
