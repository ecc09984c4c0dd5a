"""The options of `faithfusion batch`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass
class BatchConfig:
    """Reconstruct (or fuse) and evaluate many scenes, one job per scene, scheduled by Ray.

    Writes OUT/scenes/NAME (synthesised scenes), OUT/runs/METHOD/NAME (each run, with done.json once evaluated),
    OUT/logs/METHOD/NAME.log and OUT/batch_METHOD.json (the summary). Running the same command again skips
    finished scenes and resumes interrupted ones from their newest checkpoint."""

    scenes: tuple[str, ...] = ("synth:0-7",)
    """Scenes: synth:SEED or synth:A-B (SynthStreet, synthesised if needed), scene folders, or globs of them;
    space- or comma-separated."""
    method: str = "3dgs"
    """A `faithfusion fuse` preset: 3dgs, difix3d, difix3d+, genfusion, faithfusion, faithfusion+, ..."""
    out: Path = Path("runs/batch")
    size: Literal["tiny", "quick", "full"] = "quick"
    """Scene size and budget: quick and full are the demo's sizes; tiny is for smoke tests."""
    steps: int | None = None
    """Training steps per scene (None: the size's)."""
    workers: int = 0
    """Jobs at once (0: as many as the cluster's GPUs, or CPUs / --threads, allow)."""
    threads: int = 1
    """CPU threads of each job (torch and OpenMP); on a CPU-only cluster each job takes this many CPUs."""
    gpus_per_job: float = 1.0
    """GPUs per job where the cluster has GPUs (0: run on CPUs even there)."""
    engine: Literal["ray", "serial"] = "ray"
    """ray: jobs as Ray tasks; serial: one after another in this process (no Ray)."""
    address: str | None = None
    """Ray cluster to join: auto (a cluster started with `ray start` on this machine), HOST:PORT or
    ray://HOST:10001; None: start a local Ray for this batch."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    """Training seed of every scene (a SynthStreet scene's world seed is in its name)."""
    fixer: str | None = None
    """Difix folder for the fusion methods (identity: an untrained identity model, plumbing only)."""
    video_fixer: str | None = None
    progress: bool = True
