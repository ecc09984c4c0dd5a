"""`faithfusion batch`: many scenes, one job each (synthesise, recon or fuse, evaluate), scheduled by Ray."""

from __future__ import annotations

from faithfusion.batch.config import BatchConfig
from faithfusion.batch.run import run_batch


def run_batch_command(cfg: BatchConfig) -> dict:
    return run_batch(cfg)


__all__ = ["BatchConfig", "run_batch_command"]
