"""The methods, by name: each one a schedule over the shared Trainer, never a copy of it.

`3dgs` is the plain reconstruction. The fusion methods (difix3d, difix3d+, genfusion,
faithfusion) register here as they are built."""

from __future__ import annotations

from typing import Callable

from faithfusion.data.scene import SceneData
from faithfusion.train.config import ReconConfig
from faithfusion.train.recon import finish_run, train_run
from faithfusion.train.trainer import Trainer

MethodFn = Callable[[ReconConfig], tuple[Trainer, SceneData]]


def run_3dgs(cfg: ReconConfig) -> tuple[Trainer, SceneData]:
    trainer, scene = train_run(cfg)
    finish_run(trainer, scene, cfg, cfg.out)
    return trainer, scene


METHODS: dict[str, MethodFn] = {"3dgs": run_3dgs}


def run_method(name: str, cfg: ReconConfig) -> tuple[Trainer, SceneData]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {sorted(METHODS)}")
    return METHODS[name](cfg)
