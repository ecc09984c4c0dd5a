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
        elif value is not None and (hint is Path or str(hint).startswith("pathlib") or f.name in ("data", "out")):
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


NOT_CARRIED = ("config", "resume", "overwrite")
"""config.yaml entries that a re-run does not take over: what to do with a folder is asked anew each time."""


def flags_from_config(path: Path, cls: type = ReconConfig, method: str | None = None) -> Any:
    """The `cls` that RUN/config.yaml (or RUN) was made with, as the defaults of a re-run (`--config`).

    `method` is the `fuse` preset of the command (None: `recon`); a config written by another command is refused.
    --resume and --overwrite are not taken over; entries the command no longer has are named in a warning."""
    path = Path(path)
    if not path.is_dir() and not path.is_file():
        raise NotARunError(f"--config {path}: no such file")
    text_path = path if path.is_file() else path / "config.yaml"
    try:
        data = yaml.safe_load(text_path.read_text()) if text_path.is_file() else None
    except yaml.YAMLError as e:
        raise NotARunError(f"--config {text_path}: not YAML ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict) or "data" not in data:
        raise NotARunError(f"--config {text_path}: not the config.yaml of a recon or fuse run (no 'data' scene)")
    made_by = (data.get("_run") or {}).get("method")
    if made_by != method:
        which = lambda m: f"`faithfusion fuse {m}`" if m else "`faithfusion recon`"  # noqa: E731
        raise NotARunError(f"--config {text_path}: written by {which(made_by)}; re-run it with {which(made_by)} --config {path}"
                           f" (this is {which(method)})")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in names and k != "_run"]
    if unknown:
        print(f"WARNING: --config {text_path}: entries this version does not have are ignored: {', '.join(unknown)}")
    data = {k: v for k, v in data.items() if k in names and k not in NOT_CARRIED}
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
