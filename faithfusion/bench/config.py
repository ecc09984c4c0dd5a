"""Configuration of `faithfusion bench`: the scene, the sizes and repeats, which measurements run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MEASUREMENTS = ("training", "render", "eig", "fixers")
"""The measurements that run unless skipped; `fusion` runs only with --fusion."""


@dataclass
class BenchConfig:
    """Measure training, render, EIG, fixers (and optionally every fusion method) against plain references; one JSON.

    The scene is a SynthStreet scene generated on the fly in a temporary folder (--width x --height, --frames
    timesteps), or --data DIR. The JSON names the device, the commit and the command."""

    out: Path = Path("bench.json")
    """The JSON to write (rewritten after every measurement, so an interrupted run keeps what it measured)."""
    data: Path | None = None
    """A scene folder to benchmark on instead of a generated SynthStreet scene."""
    seed: int = 0
    """SynthStreet world seed (and the training seed)."""
    width: int = 960
    height: int = 540
    frames: int = 20
    """SynthStreet timesteps (each has one image per camera)."""
    cameras: str = "front,front_left,front_right"
    """SynthStreet cameras, comma-separated."""
    scale: float = 1.0
    """Image scale of a --data scene."""
    data_cameras: tuple[int, ...] = (0, 1, 2)
    """DriveStudio camera ids of a --data scene."""
    holdout_every: int = 8
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0
    """CPU threads for torch (0 = torch's default)."""
    max_points: int = 300_000
    """Initial Gaussians from the scene's points (at most)."""
    random_points: int = 50_000
    """Initial random Gaussians (ball and far shell)."""
    train_steps: int = 200
    """Timed training iterations of (a), after --warmup-steps untimed ones; densification is held off throughout."""
    warmup_steps: int = 20
    repeats: int = 10
    """Timed calls of the render, the EIG map and the training iteration."""
    warmup: int = 3
    h_train_repeats: int = 2
    """Timed computations of H_train over every training view."""
    fixers: tuple[str, ...] = ("difix", "eigent", "genfusion")
    """Shipped fixers to time (faithfusion/fixers/weights/NAME)."""
    fixer_width: int = 960
    fixer_height: int = 540
    fixer_frames: int = 16
    """Frames per timed call: a window for the video fixers, a batch of single frames for Difix."""
    fixer_repeats: int = 5
    fixer_warmup: int = 2
    skip: tuple[str, ...] = ()
    """Measurements to leave out: training, render, eig, fixers."""
    fusion: bool = False
    """Also run every --fusion-methods preset end to end with --fusion-steps steps (minutes)."""
    fusion_methods: tuple[str, ...] = ("3dgs", "faithfusion", "difix3d", "genfusion")
    fusion_steps: int = 300
    overwrite: bool = False
    """Replace an existing --out file."""


def check_bench_config(cfg: BenchConfig) -> None:
    """Refuse flag values that cannot make a benchmark: FlagError naming the flag."""
    from faithfusion.utils.flags import FlagError, require_at_least, require_device, require_positive

    for flag in ("width", "height", "frames", "train_steps", "repeats", "h_train_repeats", "fixer_width",
                 "fixer_height", "fixer_frames", "fixer_repeats", "fusion_steps", "max_points"):
        require_at_least("--" + flag.replace("_", "-"), getattr(cfg, flag), 1)
    for flag in ("warmup_steps", "warmup", "fixer_warmup", "threads", "random_points", "holdout_every"):
        require_at_least("--" + flag.replace("_", "-"), getattr(cfg, flag), 0)
    require_positive("--scale", cfg.scale)
    unknown = sorted(set(cfg.skip) - set(MEASUREMENTS))
    if unknown:
        raise FlagError(f"--skip {' '.join(unknown)}: unknown measurement; choose from {', '.join(MEASUREMENTS)}")
    require_device("--device", cfg.device)
    if Path(cfg.out).exists() and not cfg.overwrite:
        raise FlagError(f"--out {cfg.out}: file exists; pass --overwrite to replace it")
