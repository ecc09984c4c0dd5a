"""The methods, by name: each one a schedule over the shared Trainer, never a copy of it.

`3dgs` is the plain reconstruction; `difix3d`, `difix3d+`, `genfusion` and `faithfusion` run their
schedules through `fusion/runner.py`. A method given a plain ReconConfig runs with its published
schedule scaled to cfg.steps and the shipped fixers; give it a FuseConfig (fusion/config.py) to choose
fixers and schedules. `render_function(trainer)` is what an evaluation should render with: the
method's own render hook where it has one (Difix3D+ fixes its final renders), else the trainer's render.
"""

from __future__ import annotations

from typing import Callable
from weakref import WeakKeyDictionary

from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.data.scene import SceneData
from faithfusion.train.config import ReconConfig
from faithfusion.train.recon import finish_run, train_run
from faithfusion.train.trainer import Trainer

MethodFn = Callable[[ReconConfig], tuple[Trainer, SceneData]]
RenderFn = Callable[[Camera], Tensor]

_RENDER_HOOKS: "WeakKeyDictionary[Trainer, RenderFn]" = WeakKeyDictionary()


def run_3dgs(cfg: ReconConfig) -> tuple[Trainer, SceneData]:
    trainer, scene = train_run(cfg)
    finish_run(trainer, scene, cfg, cfg.out)
    return trainer, scene


def fusion_method(name: str) -> MethodFn:
    def run(cfg: ReconConfig) -> tuple[Trainer, SceneData]:
        from faithfusion.fusion.config import as_fuse_config
        from faithfusion.fusion.runner import run_fusion

        trainer, scene, _, _ = run_fusion(name, as_fuse_config(cfg, method=name))
        return trainer, scene

    run.__name__ = f"run_{name.replace('+', '_plus')}"
    return run


METHODS: dict[str, MethodFn] = {
    "3dgs": run_3dgs,
    "difix3d": fusion_method("difix3d"),
    "difix3d+": fusion_method("difix3d+"),
    "genfusion": fusion_method("genfusion"),
    "faithfusion": fusion_method("faithfusion"),
    "faithfusion+": fusion_method("faithfusion+"),
}


def run_method(name: str, cfg: ReconConfig) -> tuple[Trainer, SceneData]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {sorted(METHODS)}")
    return METHODS[name](cfg)


def set_render_function(trainer: Trainer, fn: RenderFn) -> None:
    _RENDER_HOOKS[trainer] = fn


def render_function(trainer: Trainer) -> RenderFn:
    """camera -> RGB `[H, W, 3]`: the method's render hook, or the trainer's plain render."""
    hook = _RENDER_HOOKS.get(trainer)
    if hook is not None:
        return hook

    def render(camera: Camera) -> Tensor:
        rgb, _ = trainer.render_camera(camera.to(trainer.device))
        return rgb

    return render
