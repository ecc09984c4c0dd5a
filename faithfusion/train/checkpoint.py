"""Checkpoints: everything needed to resume a run exactly, written atomically."""

from __future__ import annotations

import re
from pathlib import Path

import torch


def checkpoint_path(ckpt_dir: Path, step: int) -> Path:
    return Path(ckpt_dir) / f"step_{step:06d}.pt"


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The checkpoint with the highest step in `ckpt_dir`, or None."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return None
    found = sorted(
        (int(m.group(1)), p) for p in ckpt_dir.glob("step_*.pt") if (m := re.match(r"step_(\d+)\.pt$", p.name))
    )
    return found[-1][1] if found else None


def save_checkpoint(path: Path, payload: dict, keep_last: int = 2) -> None:
    """torch.save through a temporary file; keeps only the newest `keep_last` checkpoints."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pt.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    olds = sorted(path.parent.glob("step_*.pt"))
    for old in olds[:-keep_last]:
        old.unlink()


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as err:  # corrupt or truncated file
        raise ValueError(f"{path}: cannot read checkpoint ({err})") from err
