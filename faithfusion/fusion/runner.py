"""One fusion run, whatever the method: build the method's schedule and fixers, train in rounds, write RUN/.

RUN/ holds what `recon` writes plus RUN/ckpt/round_XXX.pt (round boundaries), RUN/rounds.jsonl (one
row per round) and a "fusion" section in RUN/metrics.json (method, rounds, fixers and whether any
of them was an untrained identity model).
"""

from __future__ import annotations

import json
from pathlib import Path

from faithfusion.data.scene import SceneData, save_json_atomic
from faithfusion.fusion.config import FuseConfig
from faithfusion.fusion.fixers import ChosenFixer, choose_fixer
from faithfusion.fusion.rounds import jsonl_logger, run_rounds
from faithfusion.train.recon import eval_ids, finish_run, load_scene_for, open_run_folder, to_plain, write_config
from faithfusion.train.trainer import Trainer, resolve_device

IDENTITY_WARNING = "UNTRAINED identity-initialised fixer(s): the fused views are the model's own renders"


def build_method(name: str, cfg: FuseConfig, scene: SceneData, device) -> tuple[object, list[ChosenFixer]]:
    """The method's schedule object and the fixers it loaded."""
    identity_all = cfg.fixer == "identity"
    video_spec = cfg.video_fixer if cfg.video_fixer is not None else ("identity" if identity_all else None)
    if name in ("difix3d", "difix3d+"):
        from faithfusion.fusion.difix3d import Difix3D

        difix = choose_fixer(cfg.fixer, "difix", device)
        return Difix3D(cfg, scene, difix, plus=name == "difix3d+"), [difix]
    if name == "genfusion":
        from faithfusion.fusion.genfusion import GenFusionMethod

        gen = choose_fixer(video_spec, "genfusion", device, flag="--video-fixer")
        return GenFusionMethod(cfg, scene, gen), [gen]
    if name in ("faithfusion", "faithfusion+"):
        from faithfusion.fusion.faithfusion import FaithFusionMethod

        plus = name == "faithfusion+"
        difix = choose_fixer(cfg.fixer, "difix", device)
        if cfg.faithfusion.video_until <= 0:  # Difix at every shift: no video fixer needed
            return FaithFusionMethod(cfg, scene, difix, None, plus=plus), [difix]
        video = choose_fixer(video_spec, "eigent", device, flag="--video-fixer")
        return FaithFusionMethod(cfg, scene, difix, video, plus=plus), [difix, video]
    raise ValueError(f"unknown fusion method {name!r} (difix3d | difix3d+ | genfusion | faithfusion | faithfusion+)")


def method_trainer(method, cfg: FuseConfig, scene: SceneData, device) -> Trainer:
    """The shared Trainer with the method's reconstruction settings and its pools attached."""
    trainer = Trainer(scene, method.recon_config(cfg), device)
    trainer.pools.extend(method.pools)
    attach = getattr(method, "attach", None)  # a method that changes the captured views (GenFusion's crop)
    if attach is not None:
        attach(trainer)
    return trainer


def run_fusion(name: str, cfg: FuseConfig, scene: SceneData | None = None) -> tuple[Trainer, SceneData, object, dict]:
    """Train (or resume) `name` on cfg.data into cfg.out; returns (trainer, scene, method, metrics)."""
    out = open_run_folder(cfg)
    device = resolve_device(cfg.device)
    scene = scene or load_scene_for(cfg)
    method, fixers = build_method(name, cfg, scene, device)
    identity = any(f.identity for f in fixers)
    trainer = method_trainer(method, cfg, scene, device)
    fixer_info = {f.kind: f.source for f in fixers}
    write_config(out, cfg, {"scene": scene.summary(), "device": str(device), "method": name, "fixers": fixer_info,
                            "rounds": [{"step": r.step, **r.params} for r in method.rounds(cfg.steps)]})
    if not cfg.resume and (out / "rounds.jsonl").exists():
        (out / "rounds.jsonl").unlink()
    if identity:
        print(f"WARNING [{name}]: {IDENTITY_WARNING}")
    loop = run_rounds(trainer, method, cfg.steps, out / "ckpt", resume=cfg.resume, stop_after=cfg.stop_after_rounds,
                      progress=cfg.progress, log=jsonl_logger(out / "rounds.jsonl"))
    from faithfusion.fusion.methods import set_render_function

    hook = method.render_fn(trainer)
    if hook is not None:
        set_render_function(trainer, hook)
    if loop["stopped"]:
        return trainer, scene, method, {"stopped": True, **loop}
    metrics = finish_run(trainer, scene, cfg, out)
    fusion = {"method": name, **loop, "fixers": fixer_info, "identity_fixer": identity,
              "pools": {p.name: len(p.views) for p in method.pools}}
    if identity:
        fusion["warning"] = IDENTITY_WARNING
    if hook is not None and scene.test_ids:
        fusion["test_with_render_hook"] = evaluate_hook(hook, trainer, scene, cfg)
    metrics["fusion"] = to_plain(fusion)
    save_json_atomic(out / "metrics.json", metrics)
    return trainer, scene, method, metrics


TRAINS_AS = {"difix3d+": "difix3d", "faithfusion+": "faithfusion"}
"""Variants that train exactly as another method and differ only in their render hook."""


def load_fusion_run(run: Path, name: str | None = None, device=None) -> tuple[Trainer, SceneData, object]:
    """A finished fusion run rebuilt from RUN/config.yaml and its final round checkpoint: (trainer, scene, method).

    `name` may name a variant that trains identically to the run's method (TRAINS_AS: faithfusion+ over a
    faithfusion run), so that its render hook can be evaluated without training again."""
    from faithfusion.fusion.rounds import latest_round, load_round
    from faithfusion.train.run import read_run_config

    run = Path(run)
    cfg = read_run_config(run, FuseConfig)
    name = name or cfg.method
    if TRAINS_AS.get(name, name) != TRAINS_AS.get(cfg.method, cfg.method):
        raise ValueError(f"{run}: a {cfg.method} run cannot stand for {name} (they train differently)")
    last = latest_round(run / "ckpt")
    if last is None:
        raise FileNotFoundError(f"{run / 'ckpt'}: no round checkpoint in this fusion run")
    device = device or resolve_device(cfg.device)
    scene = load_scene_for(cfg)
    method, _ = build_method(name, cfg, scene, device)
    cfg.init.random_points = min(cfg.init.random_points, 16)  # the checkpoint replaces the initial Gaussians
    trainer = method_trainer(method, cfg, scene, device)
    state = load_round(last, trainer, method)
    if not state.get("final"):
        raise ValueError(f"{last}: the run has not finished (resume it with --resume first)")
    return trainer, scene, method


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


def run_fuse(cfg: FuseConfig) -> dict:
    """`faithfusion fuse`: one method on one scene."""
    if cfg.method == "3dgs":
        from faithfusion.train.recon import run_recon

        return run_recon(cfg)
    _, _, _, metrics = run_fusion(cfg.method, cfg)
    if metrics.get("stopped"):
        print(f"stopped after {metrics['completed_rounds']} rounds (--stop-after-rounds); continue with --resume")
        return metrics
    print(f"done: {cfg.method}, {metrics['steps']} steps, {metrics['fusion']['completed_rounds']} rounds, held-out "
          + json.dumps(metrics.get("test", {})) + f"  ->  {cfg.out}/metrics.json")
    return metrics
