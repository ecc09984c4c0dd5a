"""Reconstruction benchmark: `faithfusion recon` quality on a scene, and its speed against a plain
gsplat loop (raw `gsplat.rasterization` + DefaultStrategy, same images, init and loss) in one run.

    python benchmarks/bench_recon.py --data DIR --out OUT [--steps 7000] [--configs default,mcmc]
        [--speed-steps 3000] [--continue-to 30000] [--result benchmarks/results/NAME.json]

Writes OUT/<config>/ run folders and a JSON with device, commit, command and figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from common import git_commit, sync

from faithfusion.data.load import load_scene
from faithfusion.eval.metrics import ssim_map
from faithfusion.train.config import ReconConfig, StrategyConfig
from faithfusion.train.init import camera_extent, init_gaussians
from faithfusion.train.optim import build_optimizers
from faithfusion.train.recon import run_recon
from faithfusion.train.trainer import Trainer, real_views
from faithfusion.utils.jsonio import save_json_atomic

CONFIGS: dict[str, dict] = {
    "default": {},
    "absgrad": {"strategy": StrategyConfig(name="default", absgrad=True, grow_grad2d=0.0008)},
    "appearance": {"appearance": True},
    "sh1": {"sh_degree": 1},
    "mcmc": {"strategy": StrategyConfig(name="mcmc", cap_max=500_000), "opacity_reg": 0.01, "scale_reg": 0.01},
    "reg": {"opacity_reg": 0.01, "scale_reg": 0.01},
    "reg_stop7k": {"opacity_reg": 0.01, "scale_reg": 0.01, "strategy": StrategyConfig(name="default", refine_stop=7000)},
}


def plain_gsplat_loop(scene, cfg: ReconConfig, steps: int, device: torch.device) -> dict:
    """The reference: gsplat's rasterization and DefaultStrategy called directly, nothing else."""
    from gsplat import rasterization
    from gsplat.strategy import DefaultStrategy

    g = torch.Generator().manual_seed(cfg.seed)
    model = init_gaussians(scene, cfg.init, cfg.sh_degree, g).to(device)
    params = model.params
    _, radius = camera_extent([scene.frames[i].camera for i in scene.train_ids])
    optimizers = build_optimizers(model, cfg.lr, radius * 1.1)
    strategy = DefaultStrategy(refine_stop_iter=cfg.strategy.refine_stop)
    state = strategy.initialize_state(scene_scale=radius * 1.1)
    views = real_views(scene, scene.train_ids, cfg.scale, device)
    order = torch.randint(0, len(views), (steps,), generator=g).tolist()
    sync()
    t0 = time.perf_counter()
    for step in range(steps):
        v = views[order[step]]
        renders, _, info = rasterization(
            params["means"], params["quats"], torch.exp(params["scales"]), torch.sigmoid(params["opacities"]),
            torch.cat([params["sh0"], params["shN"]], 1), v.camera.viewmat[None], v.camera.K[None],
            v.camera.width, v.camera.height, sh_degree=min(step // 1000, cfg.sh_degree), packed=False,
        )
        target = v.image.float()[None] / 255.0
        loss = 0.8 * (renders - target).abs().mean() + 0.2 * (1 - ssim_map(renders, target).mean())
        strategy.step_pre_backward(params, optimizers, state, step, info)
        loss.backward()
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        strategy.step_post_backward(params, optimizers, state, step, info)
    sync()
    seconds = time.perf_counter() - t0
    return {"steps": steps, "seconds": seconds, "iterations_per_second": steps / seconds, "num_gaussians": len(params["means"])}


def trainer_speed(scene, cfg: ReconConfig, steps: int, device: torch.device) -> dict:
    trainer = Trainer(scene, cfg, device)
    sync()
    t0 = time.perf_counter()
    trainer.fit(steps, progress=False)
    sync()
    seconds = time.perf_counter() - t0
    return {"steps": steps, "seconds": seconds, "iterations_per_second": steps / seconds, "num_gaussians": len(trainer.model)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=7000)
    ap.add_argument("--configs", default="default")
    ap.add_argument("--speed-steps", type=int, default=0)
    ap.add_argument("--continue-to", type=int, default=0)
    ap.add_argument("--continue-config", default="")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--holdout-every", type=int, default=8)
    ap.add_argument("--result", type=Path, default=None)
    args = ap.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    scene = load_scene(args.data, holdout_every=args.holdout_every)
    base = ReconConfig(data=args.data, steps=args.steps, device=device.type, scale=args.scale, holdout_every=args.holdout_every,
                       progress=False, ckpt_every=1000, overwrite=True)
    result: dict = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "commit": git_commit(),
        "command": "python " + " ".join(sys.argv),
        "scene": str(args.data),
        "resolution": None,
        "runs": {},
    }
    if args.speed_steps > 0:
        plain = plain_gsplat_loop(scene, base, args.speed_steps, device)
        ours = trainer_speed(scene, base, args.speed_steps, device)
        result["speed"] = {"plain_gsplat_loop": plain, "faithfusion_trainer": ours,
                           "slowdown": plain["iterations_per_second"] / ours["iterations_per_second"]}
        print(json.dumps(result["speed"], indent=1), flush=True)
    for name in [c for c in args.configs.split(",") if c]:
        cfg = replace(base, out=args.out / name, **CONFIGS[name])
        t0 = time.perf_counter()
        metrics = run_recon(cfg, scene)
        run = {"steps": metrics["steps"], "wall_seconds": time.perf_counter() - t0, "test": metrics["test"],
               "num_gaussians": metrics["num_gaussians"], "iterations_per_second": metrics["iterations_per_second"],
               "test_psnr_per_view": [round(v["psnr"], 3) for v in metrics["test_per_view"]],
               "train_subset": metrics["train_subset"]}
        result["resolution"] = metrics["resolution"]
        result["runs"][f"{name}@{metrics['steps']}"] = run
        print(name, json.dumps(run), flush=True)
        write_result(args, result)
    if args.continue_to > 0:
        name = args.continue_config or args.configs.split(",")[0]
        cfg = replace(base, out=args.out / name, steps=args.continue_to, resume=True, **CONFIGS[name])
        t0 = time.perf_counter()
        metrics = run_recon(cfg, scene)
        result["runs"][f"{name}@{metrics['steps']}"] = {
            "steps": metrics["steps"], "wall_seconds": time.perf_counter() - t0, "test": metrics["test"],
            "num_gaussians": metrics["num_gaussians"], "iterations_per_second": metrics["iterations_per_second"],
            "test_psnr_per_view": [round(v["psnr"], 3) for v in metrics["test_per_view"]],
        }
        print(name, "continued", json.dumps(result["runs"][f"{name}@{metrics['steps']}"]), flush=True)
    print("wrote", write_result(args, result))


def write_result(args, result: dict) -> Path:
    """Rewrite the result JSON after every run so that a crash keeps what was measured."""
    return save_json_atomic(args.result or args.out / "bench_recon.json", result)


if __name__ == "__main__":
    main()
