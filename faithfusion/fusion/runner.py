"""One run of a method preset: build the method's schedule and fixers, train in rounds, write RUN/.

`run_method(name, cfg)` returns a `MethodRun` whose `render` is what an evaluation renders with: the method's
render hook where it has one (Difix3D+ fixes its final renders), else the trainer's plain render.

RUN/ holds what `recon` writes plus RUN/ckpt/round_XXX.pt (round boundaries), RUN/rounds.jsonl (one
row per round) and a "fusion" section in RUN/metrics.json (method, rounds, fixers and whether any
of them was an untrained identity model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.data.scene import SceneData
from faithfusion.errors import UserError
from faithfusion.fusion.config import FuseConfig, fuse_config
from faithfusion.fusion.presets import MethodPreset, preset
from faithfusion.fusion.rounds import jsonl_logger, run_rounds
from faithfusion.train.config import ReconConfig
from faithfusion.train.recon import (
    eval_ids, finish_run, load_scene_for, open_run_folder, ply_frame, train_run, write_config,
)
from faithfusion.train.trainer import Trainer
from faithfusion.utils.device import resolve_device
from faithfusion.utils.jsonio import save_json_atomic, to_plain

IDENTITY_WARNING = "UNTRAINED identity-initialised fixer(s): the fused views are the model's own renders"

RenderFn = Callable[[Camera], Tensor]


class FusionRunError(UserError, ValueError):
    """A run folder that cannot serve as the fusion run asked for."""


@dataclass
class MethodRun:
    """A finished (or stopped) run of one method preset."""

    preset: MethodPreset
    trainer: Trainer
    scene: SceneData
    method: object | None
    """The method's schedule object (None for 3dgs)."""
    metrics: dict
    render: RenderFn
    """camera -> RGB `[H, W, 3]`: what an evaluation renders with (the method's render hook, else the plain render)."""

    @property
    def stopped(self) -> bool:
        return bool(self.metrics.get("stopped"))


def plain_render(trainer: Trainer) -> RenderFn:
    """camera -> RGB `[H, W, 3]`: the trainer's own render."""

    def render(camera: Camera) -> Tensor:
        rgb, _ = trainer.render_camera(camera.to(trainer.device))
        return rgb

    return render


def run_method(name: str, cfg: ReconConfig, scene: SceneData | None = None) -> MethodRun:
    """Train (or resume) the preset `name` on cfg.data into cfg.out. A config of another class (a plain
    ReconConfig) is converted to the preset's, with its default schedule and the shipped fixers."""
    p = preset(name)
    if type(cfg) is not p.config:
        cfg = fuse_config(p.config, cfg)
    if p.build is None:
        trainer, scene = train_run(cfg, scene)
        metrics = finish_run(trainer, scene, cfg, Path(cfg.out))
        return MethodRun(p, trainer, scene, None, metrics, plain_render(trainer))
    return run_fusion(p, cfg, scene)


def method_trainer(method, cfg: FuseConfig, scene: SceneData, device) -> Trainer:
    """The shared Trainer with the method's reconstruction settings and its pools attached."""
    trainer = Trainer(scene, method.recon_config(cfg), device)
    trainer.pools.extend(method.pools)
    attach = getattr(method, "attach", None)  # a method that changes the captured views (GenFusion's crop)
    if attach is not None:
        attach(trainer)
    return trainer


def run_fusion(p: MethodPreset, cfg: FuseConfig, scene: SceneData | None = None) -> MethodRun:
    """Train (or resume) the fusion preset `p` on cfg.data into cfg.out."""
    name = p.name
    out = open_run_folder(cfg)
    device = resolve_device(cfg.device)
    scene = scene or load_scene_for(cfg)
    method, fixers = p.build(cfg, scene, device)
    method.name = name
    identity = any(f.identity for f in fixers)
    trainer = method_trainer(method, cfg, scene, device)
    fixer_info = {f.kind: f.source for f in fixers}
    write_config(out, cfg, {"scene": scene.summary(), "device": str(device), "method": name, "fixers": fixer_info,
                            "rounds": [{"step": r.step, **r.params} for r in method.rounds(cfg.steps)],
                            "ply": ply_frame(scene, cfg)})
    if not cfg.resume and (out / "rounds.jsonl").exists():
        (out / "rounds.jsonl").unlink()
    if identity:
        print(f"WARNING [{name}]: {IDENTITY_WARNING}")
    loop = run_rounds(trainer, method, cfg.steps, out / "ckpt", resume=cfg.resume, stop_after=cfg.stop_after_rounds,
                      progress=cfg.progress, log=jsonl_logger(out / "rounds.jsonl"))
    hook = method.render_fn(trainer)
    render = hook if hook is not None else plain_render(trainer)
    if loop["stopped"]:
        return MethodRun(p, trainer, scene, method, {"stopped": True, **loop}, render)
    metrics = finish_run(trainer, scene, cfg, out)
    fusion = {"method": name, **loop, "fixers": fixer_info, "identity_fixer": identity,
              "pools": {pool.name: len(pool.views) for pool in method.pools}}
    if identity:
        fusion["warning"] = IDENTITY_WARNING
    if hook is not None and scene.test_ids:
        fusion["test_with_render_hook"] = evaluate_hook(hook, trainer, scene, cfg)
    metrics["fusion"] = to_plain(fusion)
    save_json_atomic(out / "metrics.json", metrics)
    return MethodRun(p, trainer, scene, method, metrics, render)


def run_method_name(run: Path) -> str:
    """The preset that trained the fusion run `run` (RUN/config.yaml)."""
    path = Path(run) / "config.yaml"
    if not path.is_file():
        raise FusionRunError(f"{path}: not a run folder (config.yaml missing)")
    data = yaml.safe_load(path.read_text()) or {}
    name = (data.get("_run") or {}).get("method")
    if name is None:
        raise FusionRunError(f"{path}: not a fusion run (no _run.method)")
    if data.get("no_eig"):  # written before the ablation was a preset of its own
        name = f"{name}-no-eig"
    return name


def load_fusion_run(run: Path, name: str | None = None, device=None) -> MethodRun:
    """A finished fusion run rebuilt from RUN/config.yaml and its final round checkpoint.

    `name` may name a preset that trains as the run's method (faithfusion+ over a faithfusion run), so that
    its render hook can be evaluated without training again."""
    from faithfusion.fusion.rounds import latest_round, load_round
    from faithfusion.train.run import read_run_config

    run = Path(run)
    trained = preset(run_method_name(run))
    p = preset(name or trained.name)
    if p.build is None:
        raise FusionRunError(f"{run}: {p.name} has no rounds to load; open a 3dgs run with train.run.load_run")
    if p.training != trained.training:
        raise FusionRunError(f"{run}: a {trained.name} run cannot stand for {p.name} (they train differently)")
    cfg = read_run_config(run, p.config)
    last = latest_round(run / "ckpt")
    if last is None:
        raise FusionRunError(f"{run / 'ckpt'}: no round checkpoint in this fusion run")
    device = device or resolve_device(cfg.device)
    scene = load_scene_for(cfg)
    method, _ = p.build(cfg, scene, device)
    method.name = p.name
    cfg.init.random_points = min(cfg.init.random_points, 16)  # the checkpoint replaces the initial Gaussians
    trainer = method_trainer(method, cfg, scene, device)
    state = load_round(last, trainer, method)
    if not state.get("final"):
        raise FusionRunError(f"{last}: the run has not finished (resume it with --resume first)")
    hook = method.render_fn(trainer)
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    return MethodRun(p, trainer, scene, method, metrics, hook if hook is not None else plain_render(trainer))


def evaluate_hook(hook, trainer, scene: SceneData, cfg: FuseConfig) -> dict:
    """Held-out metrics of the method's own render function (Difix3D+: renders fixed once more)."""
    import numpy as np
    import torch

    from faithfusion.eval.metrics import Metrics

    metrics, rows = Metrics(), []
    with torch.no_grad():
        for i in eval_ids(scene, cfg):
            pred = hook(scene.camera(i, cfg.scale)).clamp(0, 1)
            gt = scene.load_image(i, cfg.scale).to(pred.device)
            rows.append(metrics(pred[None], gt[None]))
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if rows[0][k] is not None} if rows else {}
