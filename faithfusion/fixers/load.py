"""Rebuild a fixer from whatever `--fixer` names: a saved fixer folder (any registered class), a published
Difix pipeline folder (`nvidia/difix`, `nvidia/difix_ref`), a Difix3D training `.pkl`, or a plain SD-Turbo
folder (an untrained Difix on it); paths or hub ids from the local cache (`fixers/published.py`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

import faithfusion.fixers.difix  # noqa: F401  (registers Difix)
import faithfusion.fixers.eigent  # noqa: F401  (registers EIGent, EIGentCogVideoX)
import faithfusion.fixers.genfusion  # noqa: F401  (registers GenFusion)
from faithfusion.fixers.base import FixerModel, read_config, registered_fixers
from faithfusion.fixers.published import DEFAULT_BASE, FixerSource, detect_fixer_source

BASE_ENV = "FAITHFUSION_SD_TURBO"  # where a Difix3D .pkl's SD-Turbo base is, when not given


def load_fixer(spec: str | Path, map_location: str | torch.device = "cpu", allow_download: bool = False,
               base: str | None = None, **overrides: Any) -> FixerModel:
    """The fixer `spec` holds (kind detected by `detect_fixer_source`), on `map_location`, in eval mode.

    `base`: the SD-Turbo a Difix3D `.pkl` is laid over (default: $FAITHFUSION_SD_TURBO, else
    `stabilityai/sd-turbo` from the local cache). `overrides` replace config fields."""
    source = detect_fixer_source(spec, allow_download)
    if source.kind == "project":
        return _load_project(source.path, map_location, **overrides)
    from faithfusion.fixers.difix import Difix, DifixConfig

    fields: dict[str, Any] = dict(backbone="sd-turbo", local_files_only=not allow_download)
    if source.kind == "difix-pkl":
        fields.update(pretrained=str(base or os.environ.get(BASE_ENV) or DEFAULT_BASE), checkpoint=str(source.path))
    else:
        fields.update(pretrained=str(source.path), joint_attention=_joint(source))
    fields.update(overrides)
    model = Difix(DifixConfig(**fields))
    return model.to(map_location).eval()


def _joint(source: FixerSource) -> bool:
    """Joint attention over render and reference: difix_ref's multi-view UNet; nvidia/difix's UNet is stock
    (a reference passes through it view by view, changing nothing); SD-Turbo gets Difix's (it is trained)."""
    return source.multiview or source.kind == "sd-turbo"


def _load_project(directory: Path, map_location: str | torch.device, **overrides: Any) -> FixerModel:
    registry = registered_fixers()
    name = read_config(directory).get("_class_name")
    if name not in registry:
        raise ValueError(f"{directory}: unknown fixer class {name!r}; registered: {sorted(registry)}")
    return registry[name].from_pretrained(directory, map_location=map_location, **overrides)
