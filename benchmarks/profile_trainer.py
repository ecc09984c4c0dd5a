"""Where does the trainer's time per iteration go, beyond a minimal gsplat loop?

    python benchmarks/profile_trainer.py --out JSON [--device cuda] [--width 960 --height 540 --frames 20]
        [--steps 200] [--warmup 20] [--profile-steps 30]

On the scene of `faithfusion bench` (SynthStreet seed 0 made on the fly, the same initial Gaussians, no
densification), times ms per iteration of: the minimal loop (`faithfusion/bench/training.py`), the trainer as
configured for a run, and the trainer with one feature turned off at a time (lidar depth term, sky model and sky
loss, SH degree 0 ... ). Each variant is a fresh trainer from the same scene and seed, so the rows differ by one
thing. Then a torch.profiler table of the full trainer's steps (top operators by self device time and by self CPU
time). JSON out, with device and commit.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, git_commit  # noqa: E402
from faithfusion.bench.config import BenchConfig  # noqa: E402
from faithfusion.bench.scene import bench_scene, recon_config  # noqa: E402
from faithfusion.bench.training import MinimalLoop, gsplat_rgb, loop_figures, torch_rgb  # noqa: E402
from faithfusion.train.trainer import Trainer  # noqa: E402
from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402

VARIANTS: dict[str, dict] = {
    "trainer": {},
    "no_depth_term": {"depth_lambda": 0.0},
    "no_sky_loss": {"sky_lambda": 0.0},
    "no_depth_no_sky_loss": {"depth_lambda": 0.0, "sky_lambda": 0.0},
}
"""variant -> ReconConfig fields changed from the run's configuration."""


def profile_table(step, device: torch.device, steps: int) -> dict:
    """Top operators of `steps` calls of `step` by self device time and by self CPU time (strings of rows)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    avg = prof.key_averages()
    out = {"by_self_cpu": avg.table(sort_by="self_cpu_time_total", row_limit=30)}
    if device.type == "cuda":
        out["by_self_device"] = avg.table(sort_by="self_cuda_time_total", row_limit=30)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--width", type=int, default=960)
    ap.add_argument("--height", type=int, default=540)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--profile-steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = BenchConfig(out=args.out, device=args.device, width=args.width, height=args.height, frames=args.frames,
                      train_steps=args.steps, warmup_steps=args.warmup)
    result: dict = {"benchmark": "profile_trainer", "command": " ".join(["python", *sys.argv]), "commit": git_commit(),
                    "device": device_name(device), "torch_threads": torch.get_num_threads(), "variants": {}}
    with bench_scene(cfg) as bs:
        base = recon_config(cfg, bs.data, bs.camera_ids, device)
        raster = gsplat_rgb if device.type == "cuda" else torch_rgb
        for name, change in VARIANTS.items():
            trainer = Trainer(bs.scene, replace(base, **change), device)
            for _ in range(args.warmup):  # both start from Gaussians at the full SH degree
                trainer.train_step()
            if name == "trainer":
                loop = MinimalLoop(dict(trainer.model.params), trainer.model.sh_degree, trainer.real.views, trainer.cfg,
                                   trainer.scene_scale, raster, seed=trainer.cfg.seed)
                result["variants"]["minimal_loop"] = loop_figures(loop.step, device, args.warmup, args.steps, lambda: len(loop.model))
                del loop
            result["variants"][name] = loop_figures(trainer.train_step, device, args.warmup, args.steps, lambda: len(trainer.model))
            print(name, f"{result['variants'][name]['ms_per_iteration']:.2f} ms", flush=True)
            if name == "trainer":
                result["profile"] = profile_table(trainer.train_step, device, args.profile_steps)
            del trainer
            if device.type == "cuda":
                torch.cuda.empty_cache()
    plain = result["variants"]["minimal_loop"]["ms_per_iteration"]
    result["over_minimal_loop"] = {k: v["ms_per_iteration"] / plain for k, v in result["variants"].items()}
    save_json_atomic(args.out, result)
    for k, v in result["over_minimal_loop"].items():
        print(f"{k:24s} {result['variants'][k]['ms_per_iteration']:7.2f} ms  {v:.2f}x")
    print(result["profile"].get("by_self_device", "")[:6000])
    print(result["profile"]["by_self_cpu"][:6000])


if __name__ == "__main__":
    main()
