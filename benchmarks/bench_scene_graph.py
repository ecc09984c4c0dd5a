"""Moving vehicles with and without the scene graph: PSNR on vehicle pixels of held-out frames at 0 m.

    python benchmarks/bench_scene_graph.py --out OUT [--seed 8] [--steps 1000] [--device cpu]
        [--result benchmarks/results/scene_graph_quick_cpu.json]

Writes a dynamic SynthStreet scene at the demo's quick size (16 frames, 192x128, 3 cameras; no lane-shift
views, no observation masks), trains `recon` twice (background only, and --scene-graph) with the quick
demo's budget, and evaluates the held-out frames (every 8th timestep) against the recorded images:
whole image, vehicle pixels (gt_shifted/+0.0m/instance_masks > 0) and moving-vehicle pixels
(dynamic_masks/vehicle), each a PSNR per view averaged over the views that have such pixels.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import git_commit

from faithfusion.synth.generate import generate
from faithfusion.train.config import InitConfig, ReconConfig
from faithfusion.train.recon import release_run_lock, train_run
from faithfusion.utils.jsonio import save_json_atomic


def masked_psnr(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> float | None:
    """PSNR over the pixels of `mask [H, W]` (None when it is empty)."""
    if not mask.any():
        return None
    mse = ((pred - gt) ** 2)[mask].mean()
    return float(-10 * torch.log10(mse.clamp_min(1e-10)))


def load_mask(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path)).astype(np.int64) > 0)


def evaluate(trainer, scene, root: Path) -> dict:
    rows = []
    for i in scene.test_ids:
        f = scene.frames[i]
        cam = scene.camera(i).to(trainer.device)
        with torch.no_grad():
            pred = trainer.render_camera(cam)[0].clamp(0, 1).cpu()
        gt = scene.load_image(i)
        name = f"{f.timestep:03d}_{f.cam_name}.png"
        vehicle = load_mask(root / "gt_shifted" / "+0.0m" / "instance_masks" / name)
        moving = load_mask(root / "dynamic_masks" / "vehicle" / name)
        rows.append({"frame": i, "all": masked_psnr(pred, gt, torch.ones_like(vehicle)), "vehicle": masked_psnr(pred, gt, vehicle),
                     "moving_vehicle": masked_psnr(pred, gt, moving), "vehicle_pixels": int(vehicle.sum()),
                     "moving_pixels": int(moving.sum())})
    mean = {k: float(np.mean([r[k] for r in rows if r[k] is not None])) if any(r[k] is not None for r in rows) else None
            for k in ("all", "vehicle", "moving_vehicle")}
    return {"mean_psnr": mean, "views": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--result", type=Path, default=None)
    a = ap.parse_args()
    root = a.out / f"scene_{a.seed}"
    if not (root / "scene.json").is_file():
        generate(root, a.seed, frames=16, width=192, height=128, shifts=(), dynamic=True, observation=False, overwrite=True)
    result = {"command": " ".join(sys.argv), "commit": git_commit(), "device": a.device, "seed": a.seed, "steps": a.steps,
              "size": "quick (16 frames, 192x128, 3 cameras)", "runs": {}}
    for graph in (False, True):
        name = "scene_graph" if graph else "background_only"
        cfg = ReconConfig(data=root, out=a.out / f"run_{a.seed}_{name}", steps=a.steps, device=a.device, progress=False,
                          ckpt_every=0, save_renders=False, overwrite=True, scene_graph=graph,
                          init=InitConfig(max_points=10_000, random_points=2_000))
        t0 = time.perf_counter()
        trainer, scene = train_run(cfg)
        release_run_lock(Path(cfg.out))
        run = evaluate(trainer, scene, root)
        run.update(train_seconds=time.perf_counter() - t0, num_gaussians=len(trainer.model),
                   nodes=trainer.graph.num_nodes if trainer.graph is not None else 0,
                   node_track_ids=trainer.graph.track_ids if trainer.graph is not None else [])
        result["runs"][name] = run
        print(name, run["mean_psnr"], f"{run['nodes']} nodes, {run['train_seconds']:.0f} s", flush=True)
    save_json_atomic(a.result or a.out / "scene_graph.json", result)


if __name__ == "__main__":
    main()
