"""Rebuild a fixer from whatever `--fixer` / `--video-fixer` names: a saved fixer folder (any registered class), a
published Difix pipeline folder (`nvidia/difix`, `nvidia/difix_ref`), a Difix3D training `.pkl`, a plain SD-Turbo
folder (an untrained Difix on it), a CogVideoX folder (EIGent on it, with a VideoPainter branch), a VideoPainter
branch folder or GenFusion's DynamiCrafter checkpoint (`fixers/dynamicrafter.py`); paths or hub ids from the local cache (`fixers/published.py`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

import faithfusion.fixers.difix  # noqa: F401  (registers Difix)
import faithfusion.fixers.eigent  # noqa: F401  (registers EIGent, EIGentCogVideoX)
import faithfusion.fixers.genfusion  # noqa: F401  (registers GenFusion)
import faithfusion.fixers.dynamicrafter  # noqa: F401  (registers GenFusionDynamiCrafter)
from faithfusion.fixers.base import FixerModel, read_config, registered_fixers
from faithfusion.fixers.published import DEFAULT_BASE, DEFAULT_VIDEO_BASE, FixerSource, detect_fixer_source

BASE_ENV = "FAITHFUSION_SD_TURBO"  # where a Difix3D .pkl's SD-Turbo base is, when not given
VIDEO_BASE_ENV = "FAITHFUSION_COGVIDEOX"  # where a VideoPainter branch's CogVideoX base is, when not given
BRANCH_LAYERS = 2  # a fresh VideoPainter branch's depth on a CogVideoX folder (VideoPainter's --branch_layer_num)


def load_fixer(spec: str | Path, map_location: str | torch.device = "cpu", allow_download: bool = False,
               base: str | None = None, **overrides: Any) -> FixerModel:
    """The fixer `spec` holds (kind detected by `detect_fixer_source`), on `map_location`, in eval mode.

    `base`: the SD-Turbo a Difix3D `.pkl` is laid over (default: $FAITHFUSION_SD_TURBO, else
    `stabilityai/sd-turbo` from the local cache), or the CogVideoX a VideoPainter branch is laid over (default:
    $FAITHFUSION_COGVIDEOX, else `THUDM/CogVideoX-5b-I2V`). `overrides` replace config fields."""
    source = detect_fixer_source(spec, allow_download)
    if source.kind == "project":
        return _load_project(source.path, map_location, **overrides)
    if source.kind == "dynamicrafter":
        from faithfusion.fixers.dynamicrafter import GenFusionDynamiCrafter, GenFusionDynamiCrafterConfig

        return GenFusionDynamiCrafter(GenFusionDynamiCrafterConfig(checkpoint=str(source.path), **overrides)
                                      ).to(map_location).eval()
    if source.kind in ("cogvideox", "videopainter-branch"):
        return _load_cogvideox(source, allow_download, base, **overrides).to(map_location).eval()
    from faithfusion.fixers.difix import Difix, DifixConfig

    fields: dict[str, Any] = dict(backbone="sd-turbo", local_files_only=not allow_download)
    if source.kind == "difix-pkl":
        fields.update(pretrained=str(base or os.environ.get(BASE_ENV) or DEFAULT_BASE), checkpoint=str(source.path))
    else:
        fields.update(pretrained=str(source.path), joint_attention=_joint(source))
    fields.update(overrides)
    model = Difix(DifixConfig(**fields))
    return model.to(map_location).eval()


def _load_cogvideox(source: FixerSource, allow_download: bool, base: str | None, **overrides: Any) -> FixerModel:
    """EIGent on a CogVideoX folder (its `branch/` if it has one, else a fresh zero-initialised VideoPainter branch
    of `BRANCH_LAYERS` blocks), or on a VideoPainter branch folder laid over `base`."""
    from faithfusion.fixers.eigent import EIGentCogVideoX, EIGentCogVideoXConfig

    fields: dict[str, Any] = dict(local_files_only=not allow_download)
    if source.kind == "videopainter-branch":
        fields.update(pretrained=str(base or os.environ.get(VIDEO_BASE_ENV) or DEFAULT_VIDEO_BASE), branch=str(source.path))
    elif source.branch is not None:
        fields.update(pretrained=str(source.path), branch=str(source.branch))
    else:
        fields.update(pretrained=str(source.path), branch_layers=BRANCH_LAYERS)
    fields.update(overrides)
    return EIGentCogVideoX(EIGentCogVideoXConfig(**fields))


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
