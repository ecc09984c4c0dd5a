"""Open a finished (or checkpointed) run folder: its config, its scene and its trained model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

import torch
import yaml

from faithfusion.data.scene import SceneData
from faithfusion.errors import UserError
from faithfusion.train.checkpoint import latest_checkpoint, load_checkpoint
from faithfusion.train.config import ReconConfig


def dataclass_from_dict(cls: type, data: dict) -> Any:
    """Rebuild a (nested) config dataclass from the plain dict written to config.yaml."""
    hints = get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = dataclass_from_dict(hint, value)
        elif hint is Path or str(hint).startswith("pathlib") or f.name in ("data", "out"):
            value = Path(value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


class NotARunError(UserError, FileNotFoundError):
    """A folder given as a run that is not one (no config.yaml, no checkpoint, another command's output)."""


def read_run_config(run: Path, cls: type = ReconConfig) -> Any:
    """RUN/config.yaml as a `cls` (ReconConfig, or a fusion preset's config for a fusion run)."""
    path = Path(run) / "config.yaml"
    if not path.is_file():
        raise NotARunError(f"{path}: not a run folder (config.yaml missing)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise NotARunError(f"{path}: cannot read the run's config ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict) or "data" not in data:
        raise NotARunError(f"{path}: not the config of a reconstruction or fusion run (no 'data' scene; another command's output?)")
    data.pop("_run", None)
    return dataclass_from_dict(cls, data)


@dataclass
class LoadedRun:
    cfg: ReconConfig
    scene: SceneData
    trainer: Any  # Trainer with the checkpoint's weights


def load_run(run: Path, device: torch.device | None = None, scene: SceneData | None = None) -> LoadedRun:
    """Config + scene + the newest checkpoint of `run`, as a Trainer ready to render or continue."""
    from faithfusion.train.recon import load_scene_for
    from faithfusion.train.trainer import Trainer
    from faithfusion.utils.device import resolve_device

    cfg = read_run_config(run)
    device = device or resolve_device(cfg.device)
    ckpt = latest_checkpoint(Path(run) / "ckpt")
    if ckpt is None:
        raise NotARunError(f"{Path(run) / 'ckpt'}: no checkpoint in this run folder")
    scene = scene or load_scene_for(cfg)
    cfg.init.random_points = min(cfg.init.random_points, 16)  # the checkpoint replaces the initial Gaussians
    trainer = Trainer(scene, cfg, device)
    trainer.load_state_dict(load_checkpoint(ckpt, device))
    return LoadedRun(cfg, scene, trainer)
