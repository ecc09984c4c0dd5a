"""Cost of one pixel-EIG map (form "pixel", eig/pixel.py) against a training iteration, on a trained run.

    python benchmarks/bench_pixel_eig.py --run RUN --result OUT.json [--width 960 --height 540] [--repeats 10]

On the run's first training view resized to WxH (default 960x540), each timed after warm-up with
torch.cuda.synchronize, in one process: one pixel-EIG map (session.eig with form "pixel"), one map of the paper's
`fisherrf` form beside it, one training iteration on the same view (Trainer.train_step: render, loss, backward,
Adam; the strategy stepped past refine_stop so nothing densifies), and the map's stages (projection + Jacobian
+ tile lists, the posterior P = J^T Sigma J, the pixel kernel). Also the relative difference of the map's
variance between the `backend` path and the torch path on that view. Target: map <= 2x a training iteration.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from bench_eig import bench_train_step, freeze_strategy_steps, rel, run_view
from common import device_name, git_commit, timed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faithfusion.eig.fisher import prepare_view, resolve_backend  # noqa: E402
from faithfusion.eig.maps import eig_map  # noqa: E402
from faithfusion.eig.pixel import PixelPrior, gaussian_variance, pixel_variance, posterior_u  # noqa: E402
from faithfusion.eig.session import sky_background, train_accumulator  # noqa: E402
from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402


def ms(t: dict) -> float:
    return 1000.0 * t["median_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--result", type=Path, required=True)
    ap.add_argument("--width", type=int, default=960)
    ap.add_argument("--height", type=int, default=540)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--backend", default="auto", choices=("auto", "torch", "triton"))
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    device = torch.device(args.device)
    backend = resolve_backend(args.backend, device)
    t0 = time.perf_counter()
    trainer, view = run_view(args.run, args.width, args.height, device)
    freeze_strategy_steps(trainer)
    model, cam = trainer.model, view.camera.to(device)
    acc = train_accumulator(trainer)  # H_train over the run's training views at their own size
    sky = sky_background(trainer)
    bg = sky(cam) if sky is not None else None
    prior = PixelPrior()
    H = acc.H
    r = args.repeats
    out: dict = {
        "device": device_name(device), "commit": git_commit(), "command": " ".join(sys.argv),
        "run": str(args.run), "width": cam.width, "height": cam.height, "backend": backend,
        "num_gaussians": len(model), "prior": prior.__dict__, "setup_s": time.perf_counter() - t0,
    }
    out["pixel_map"] = timed(lambda: eig_map(model, cam, H, form="pixel", background=bg, prior=prior, backend=backend),
                             device, args.warmup, r)
    out["fisherrf_map"] = timed(lambda: eig_map(model, cam, H, form="fisherrf", background=bg, backend=backend),
                                device, args.warmup, r)
    out["train_iteration"] = bench_train_step(trainer, [view], device, args.warmup, r)
    # stages of the pixel map
    vp = prepare_view(model, cam, jacobian=True, plan=backend == "torch")
    out["visible_gaussians"] = int(vp.vq.proj.visible[0].sum())
    damping = {g: prior.precision(g) for g in H}
    out["stage_prepare"] = timed(lambda: prepare_view(model, cam, jacobian=True, plan=backend == "torch"), device, 1, r)
    out["stage_posterior"] = timed(lambda: posterior_u(vp.vq, H, damping, 1.0 / prior.noise_var), device, 1, r)
    P = posterior_u(vp.vq, H, damping, 1.0 / prior.noise_var)
    out["stage_pixel_kernel"] = timed(lambda: gaussian_variance(vp, P, bg, backend), device, 1, r)
    pix_ms, it_ms = ms(out["pixel_map"]), ms(out["train_iteration"])
    out["figures"] = {
        "pixel_map_ms": pix_ms, "fisherrf_map_ms": ms(out["fisherrf_map"]), "train_iteration_ms": it_ms,
        "pixel_map_over_train_iteration": pix_ms / it_ms, "target_max_ratio": 2.0, "target_met": pix_ms / it_ms <= 2.0,
        "stages_ms": {k[6:]: ms(out[k]) for k in ("stage_prepare", "stage_posterior", "stage_pixel_kernel")},
    }
    save_json_atomic(args.result, out)  # the timings are kept even if the check below runs out of time
    print(f"pixel map {pix_ms:.1f} ms, fisherrf map {ms(out['fisherrf_map']):.1f} ms, train iteration {it_ms:.1f} ms, "
          f"ratio {pix_ms / it_ms:.2f}", flush=True)
    if backend != "torch":  # the kernel against the torch chunks on this real view
        a = pixel_variance(model, cam, H, prior, background=bg, backend=backend)
        b = pixel_variance(model, cam, H, prior, background=bg, backend="torch")
        out["figures"]["rel_diff_vs_torch"] = {"gaussians": rel(a.gaussians, b.gaussians), "alpha": rel(a.alpha, b.alpha)}
        print("rel diff vs torch", out["figures"]["rel_diff_vs_torch"], flush=True)
        save_json_atomic(args.result, out)


if __name__ == "__main__":
    main()
