"""`faithfusion synth`: generate one SynthStreet scene."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass
class SynthConfig:
    """Generate a SynthStreet scene: DriveStudio layout plus exact ground truth at every lane shift."""

    out: Path = Path("outputs/synthstreet/seed0")
    """Folder to write the scene into."""
    seed: int = 0
    """World seed: the same seed gives byte-identical files."""
    frames: int = 40
    """Number of timesteps (10 Hz)."""
    cameras: str | tuple[str, ...] = "front,front_left,front_right"
    """Cameras, comma-separated or a tuple: front, front_left, front_right, side_left, side_right."""
    width: int = 480
    height: int = 320
    shifts: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
    """Lateral shifts in metres; each is rendered to both sides."""
    dynamic: bool = False
    """Add moving vehicles."""
    supersample: int = 2
    """Samples per pixel along each axis at geometric edges."""
    lossless_gt: bool = False
    """Store shifted RGB as PNG instead of JPEG q95."""
    progress: bool = True
    overwrite: bool = False
    """Replace the SynthStreet scene already in --out (a folder of anything else is never replaced)."""
    appearance: Literal["classic", "varied"] = "classic"
    """classic: the original look (the demo's); varied: palettes, sun and time of day, overcast, wet roads,
    vehicle types and exposure drawn per seed (the same layout; faithfusion/synth/appearance.py)."""
    observation: bool = True
    """Write the unobserved / disoccluded masks of every view (surface no recorded camera saw)."""

    def run(self) -> Path:
        from faithfusion.synth.generate import generate  # numba kernels load only when used

        return generate(
            self.out, self.seed, frames=self.frames, cameras=self.cameras, width=self.width, height=self.height,
            shifts=self.shifts, dynamic=self.dynamic, supersample=self.supersample, lossless_gt=self.lossless_gt,
            progress=self.progress, overwrite=self.overwrite, appearance=self.appearance,
            observation=self.observation,
        )


def run_synth(cfg: SynthConfig) -> Path:
    return cfg.run()
