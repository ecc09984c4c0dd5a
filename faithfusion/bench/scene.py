"""Which scene does a benchmark run on? A SynthStreet scene generated on the fly into a temporary folder, or a
scene folder given by the user; and the reconstruction settings every measurement shares."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from faithfusion.bench.config import BenchConfig
from faithfusion.data.scene import SceneData
from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig


NEVER = 10**9
"""A step number no benchmark reaches."""


@dataclass
class BenchScene:
    scene: SceneData
    data: Path
    """The scene folder (inside `work` when generated)."""
    work: Path
    """A temporary folder for the benchmark's run folders (removed at the end)."""
    source: dict
    """How the scene was made (generator settings, or the folder), for the JSON."""
    camera_ids: tuple[int, ...]
    """The DriveStudio camera ids to load (the generated cameras' ids)."""


@contextmanager
def bench_scene(cfg: BenchConfig) -> Iterator[BenchScene]:
    """The scene of `cfg`, generated in (or loaded beside) a temporary folder that lives as long as the block."""
    from faithfusion.train.recon import load_scene_for

    with tempfile.TemporaryDirectory(prefix="faithfusion-bench-") as tmp:
        work = Path(tmp)
        if cfg.data is not None:
            data, camera_ids = Path(cfg.data), tuple(cfg.data_cameras)
            source: dict = {"data": str(data), "scale": cfg.scale}
        else:
            from faithfusion.synth.generate import generate
            from faithfusion.synth.rig import rig_cameras

            data = work / "scene"
            rig = rig_cameras(cfg.cameras)
            camera_ids = tuple(c.cam_id for c in rig)
            generate(data, cfg.seed, frames=cfg.frames, cameras=cfg.cameras, width=cfg.width, height=cfg.height,
                     shifts=(), progress=False)
            source = {"synthstreet_seed": cfg.seed, "width": cfg.width, "height": cfg.height, "frames": cfg.frames,
                      "cameras": [c.name for c in rig]}
        scene = load_scene_for(recon_config(cfg, data, camera_ids, torch.device("cpu")))
        source.update(train_views=len(scene.train_ids), test_views=len(scene.test_ids))
        yield BenchScene(scene, data, work, source, camera_ids)


def recon_config(cfg: BenchConfig, data: Path, camera_ids: tuple[int, ...], device: torch.device) -> ReconConfig:
    """The reconstruction settings of every measurement: the scene's, the benchmark's initial Gaussians, quiet.

    The SH degree rises every step (full degree after the warm-up, as in most of a real run). Densification keeps
    its statistics every step (as before `refine_stop` in a real run) but never grows, prunes or resets, so that
    both loops of (a) and every timed step train the same Gaussians."""
    total = cfg.warmup_steps + cfg.train_steps
    return ReconConfig(
        data=data, cameras=camera_ids, steps=max(total, 1), device=device.type, scale=cfg.scale if cfg.data is not None else 1.0,
        holdout_every=cfg.holdout_every, sh_degree_interval=1, progress=False, seed=cfg.seed, ckpt_every=0,
        save_renders=False, init=InitConfig(max_points=cfg.max_points, random_points=cfg.random_points),
        strategy=StrategyConfig(refine_start=NEVER, refine_stop=NEVER + 1, reset_every=NEVER),
    )


def fusion_config(cfg: BenchConfig, data: Path, camera_ids: tuple[int, ...], device: torch.device) -> ReconConfig:
    """The settings of the end-to-end runs of (e): the demo's (densification until 3/4 of the steps), at
    --fusion-steps, with the benchmark's initial Gaussians."""
    steps = cfg.fusion_steps
    return ReconConfig(
        data=data, cameras=camera_ids, steps=steps, device=device.type, scale=cfg.scale if cfg.data is not None else 1.0,
        holdout_every=cfg.holdout_every, progress=False, seed=cfg.seed, ckpt_every=0, save_renders=False,
        init=InitConfig(max_points=cfg.max_points, random_points=cfg.random_points),
        strategy=StrategyConfig(refine_stop=int(0.75 * steps)),
    )
