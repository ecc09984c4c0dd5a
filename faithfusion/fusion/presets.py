"""The method presets: the one place where a method name is resolved.

A preset is one config class (its `faithfusion fuse NAME` flags: only its own schedule and fixers) and the
function that builds its method from that config. `3dgs` has no builder: it is the plain reconstruction.
A preset that `trains_as` another trains exactly as that one and differs only in its render hook (Difix3D+
fixes its final renders), so a finished run of the one can be evaluated as the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from faithfusion.data.scene import SceneData
from faithfusion.errors import UserError
from faithfusion.fusion.config import (
    Difix3DConfig, FaithFusionConfig, FuseConfig, GenFusionConfig,
)
from faithfusion.fusion.fixers import ChosenFixer, choose_fixer

BuildFn = Callable[[FuseConfig, SceneData, torch.device], tuple[object, list[ChosenFixer]]]


class UnknownMethodError(UserError, ValueError):
    pass


@dataclass(frozen=True)
class MethodPreset:
    name: str
    config: type[FuseConfig]
    """The config of `faithfusion fuse NAME`."""
    build: BuildFn | None
    """(config, scene, device) -> (the method's schedule object, the fixers it loaded); None = plain 3DGS."""
    trains_as: str | None = None
    """The preset whose training this one shares (it differs only in its render hook)."""
    summary: str = ""

    @property
    def training(self) -> str:
        """The name of the preset whose training this one runs."""
        return self.trains_as or self.name


def video_spec(cfg: FaithFusionConfig | GenFusionConfig) -> str | None:
    """--video-fixer, or `identity` when --fixer identity is given alone (tests)."""
    if cfg.video_fixer is not None:
        return cfg.video_fixer
    return "identity" if getattr(cfg, "fixer", None) == "identity" else None


def build_difix3d(plus: bool) -> BuildFn:
    def build(cfg: Difix3DConfig, scene: SceneData, device: torch.device):
        from faithfusion.fusion.difix3d import Difix3D

        difix = choose_fixer(cfg.fixer, "difix", device)
        return Difix3D(cfg, scene, difix, plus=plus), [difix]

    return build


def build_genfusion(cfg: GenFusionConfig, scene: SceneData, device: torch.device):
    from faithfusion.fusion.genfusion import GenFusionMethod

    gen = choose_fixer(video_spec(cfg), "genfusion", device, flag="--video-fixer")
    return GenFusionMethod(cfg, scene, gen), [gen]


def build_faithfusion(plus: bool, use_eig: bool) -> BuildFn:
    def build(cfg: FaithFusionConfig, scene: SceneData, device: torch.device):
        from faithfusion.fusion.faithfusion import FaithFusionMethod

        difix = choose_fixer(cfg.fixer, "difix", device)
        if cfg.faithfusion.video_until <= 0:  # Difix at every shift: no video fixer needed
            return FaithFusionMethod(cfg, scene, difix, None, plus=plus, use_eig=use_eig), [difix]
        video = choose_fixer(video_spec(cfg), "eigent", device, flag="--video-fixer")
        return FaithFusionMethod(cfg, scene, difix, video, plus=plus, use_eig=use_eig), [difix, video]

    return build


PRESETS: dict[str, MethodPreset] = {p.name: p for p in (
    MethodPreset("3dgs", FuseConfig, None, summary="plain 3D Gaussian Splatting (what `recon` runs)"),
    MethodPreset("difix3d", Difix3DConfig, build_difix3d(plus=False),
                 summary="Difix3D: progressive novel poses repaired by Difix"),
    MethodPreset("difix3d+", Difix3DConfig, build_difix3d(plus=True), trains_as="difix3d",
                 summary="Difix3D+: Difix3D, and Difix run once more on the final renders"),
    MethodPreset("genfusion", GenFusionConfig, build_genfusion,
                 summary="GenFusion: cyclic RGB-D repair of windows along the novel path"),
    MethodPreset("faithfusion", FaithFusionConfig, build_faithfusion(plus=False, use_eig=True),
                 summary="FaithFusion: EIG-conditioned fixing, EIG-weighted loss, lane shift growing per round"),
    MethodPreset("faithfusion+", FaithFusionConfig, build_faithfusion(plus=True, use_eig=True), trains_as="faithfusion",
                 summary="FaithFusion+: FaithFusion, and its final renders fixed by Difix where their EIG is high"),
    MethodPreset("faithfusion-no-eig", FaithFusionConfig, build_faithfusion(plus=False, use_eig=False),
                 summary="ablation of FaithFusion: uniform loss weights and an EIG condition of 1 everywhere"),
    MethodPreset("faithfusion+-no-eig", FaithFusionConfig, build_faithfusion(plus=True, use_eig=False),
                 trains_as="faithfusion-no-eig",
                 summary="ablation of FaithFusion+: no EIG, the final renders fixed everywhere (as Difix3D+)"),
)}


def preset(name: str) -> MethodPreset:
    """The preset called `name`, or a UserError listing them."""
    if name not in PRESETS:
        raise UnknownMethodError(f"unknown method {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[name]
