"""Checkpoints: everything needed to resume a run exactly, written atomically.

RUN/ckpt/step_XXXXXX.pt; the newest `keep_last` (by step number) are kept. A checkpoint that cannot
be read (truncated by a crash of an older version, damaged on disk) is skipped with a message and
the next older one is used.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from faithfusion.utils.atomic import atomic_torch_save
from faithfusion.errors import UserError

CHECKPOINT_NAME = re.compile(r"step_(\d+)\.pt$")


class CheckpointError(UserError):
    """No readable checkpoint where one is needed."""


def checkpoint_path(ckpt_dir: Path, step: int) -> Path:
    return Path(ckpt_dir) / f"step_{step:06d}.pt"


def checkpoints_by_step(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint in `ckpt_dir`, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in ckpt_dir.glob("step_*.pt") if (m := CHECKPOINT_NAME.match(p.name)))


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The checkpoint with the highest step in `ckpt_dir`, or None."""
    found = checkpoints_by_step(ckpt_dir)
    return found[-1][1] if found else None


def save_checkpoint(path: Path, payload: dict, keep_last: int = 2) -> None:
    """torch.save through a temporary file; keeps only the newest `keep_last` checkpoints (by step)."""
    path = Path(path)
    atomic_torch_save(path, payload, "checkpoint")
    for _, old in checkpoints_by_step(path.parent)[:-keep_last]:
        old.unlink(missing_ok=True)


def clear_checkpoints(ckpt_dir: Path) -> None:
    """Remove every checkpoint, step and round ones (a run started again with --overwrite)."""
    ckpt_dir = Path(ckpt_dir)
    for old in ckpt_dir.glob("*.pt") if ckpt_dir.is_dir() else []:
        old.unlink(missing_ok=True)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as err:  # corrupt or truncated file
        raise CheckpointError(f"{path}: cannot read checkpoint ({err})") from err


def load_latest_checkpoint(ckpt_dir: Path, device: torch.device | str = "cpu") -> tuple[Path, dict] | None:
    """The newest readable checkpoint as (path, payload); an unreadable newer one is reported and skipped.

    None when `ckpt_dir` holds no checkpoint; CheckpointError when it holds some but none is readable."""
    found = checkpoints_by_step(ckpt_dir)
    errors = []
    for _, path in reversed(found):
        try:
            return path, load_checkpoint(path, device)
        except CheckpointError as err:
            print(f"warning: {err}; falling back to the previous checkpoint")
            errors.append(str(err))
    if errors:
        raise CheckpointError(f"{ckpt_dir}: no readable checkpoint: " + "; ".join(errors))
    return None
