"""EIG cost and agreement benchmark (run it on the GPU machine; it also runs on CPU at tiny sizes).

    python benchmarks/bench_eig.py --run RUN --out OUT                 # a trained run folder
    python benchmarks/bench_eig.py --data DIR --out OUT [--train-steps 3000] [--scale 0.5]   # train a quick run first
        [--analysis DATA]     # also the EIG-vs-error analysis on a SynthStreet scene (DATA = its folder)

Measures, each timed after warm-up with torch.cuda.synchronize:
(a) one EIG map of a WxH view (default 960x540: a training camera's intrinsics rescaled) against one
    training iteration (Trainer.train_step: render, loss, backward, Adam) on that same view;
(b) H_train over all training views against one pass of training iterations over them;
(c) the GPU path against the CPU path: the Fisher of the same small scenes (the oracle's toy scene and
    a random 4000-Gaussian scene) and one EIG map, relative difference per group.
The EIG map is timed eager and with the pair loop through torch.compile (--no-compile skips that).
Writes OUT/bench_eig.json (device, commit, command, figures) and, with --analysis, OUT/analysis/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from common import git_commit, sync, timed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faithfusion.cameras import Camera  # noqa: E402
from faithfusion.eig.fisher import PARAM_GROUPS, pair_sums, prepare_view, view_fisher  # noqa: E402
from faithfusion.eig.maps import composite_scalar, eig_map  # noqa: E402
from faithfusion.eig.session import build_session  # noqa: E402
from faithfusion.eig.toy import toy_scene  # noqa: E402
from faithfusion.gaussians.model import GaussianModel  # noqa: E402


def eig_source_hash() -> str:
    """sha256 of faithfusion/eig/*.py: identifies the code even where the copy has no .git."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "faithfusion" / "eig").glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def resized_camera(cam: Camera, width: int, height: int) -> Camera:
    K = cam.K.clone()
    K[0] *= width / cam.width
    K[1] *= height / cam.height
    return replace(cam, K=K, width=width, height=height)


def add_view_args(ap) -> None:
    """The options every one-view EIG bench takes: where the JSON goes, the view's size, the repeats."""
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--width", type=int, default=960)
    ap.add_argument("--height", type=int, default=540)
    ap.add_argument("--repeats", type=int, default=10)


def run_view(run: Path, width: int, height: int, device: torch.device):
    """A reconstruction's trainer and its first training view resized to `width` x `height`."""
    from faithfusion.train.run import load_run

    trainer = load_run(run, device).trainer
    return trainer, resized_view(trainer.real.views[0], width, height)


def resized_view(view, width: int, height: int):
    """A training view at another resolution (image and masks resampled)."""
    import torch.nn.functional as F

    from faithfusion.train.views import View

    img = view.image_float(view.image.device).permute(2, 0, 1)[None]
    img = F.interpolate(img, size=(height, width), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    sky = None
    if view.sky_mask is not None:
        sky = F.interpolate(view.sky_mask.float()[None, None], size=(height, width), mode="nearest")[0, 0] > 0.5
    return View(camera=resized_camera(view.camera, width, height), image=(img.clamp(0, 1) * 255).round().to(torch.uint8),
                sky_mask=sky, lidar=view.lidar, index=view.index)


# --- (a) and (b) ----------------------------------------------------------------------------------


def freeze_strategy_steps(trainer) -> None:
    """Step past refine_stop so that timed train steps never densify, prune or reset opacities."""
    trainer.step = max(trainer.step, trainer.cfg.strategy.refine_stop + 1)
    trainer.total_steps = max(trainer.total_steps, trainer.step + 100_000)


def bench_eig_view(session, view, device, warmup: int, repeats: int, compiled: bool = False, backend: str = "auto") -> dict:
    cam = view.camera
    model = session.model
    out: dict = {"width": cam.width, "height": cam.height, "num_gaussians": len(model)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out["eig_map"] = timed(lambda: session.eig(cam), device, warmup, repeats)
    if device.type == "cuda":
        out["eig_map"]["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    # where the time goes
    vp = prepare_view(model, cam, max_pairs=session.max_pairs)
    out["pairs_padded"] = sum(c.n_pairs for c in vp.chunks) * vp.grid.n_pixels
    out["chunks"] = len(vp.chunks)
    out["stage_prepare_projection_jacobian_tiles"] = timed(lambda: prepare_view(model, cam, max_pairs=session.max_pairs), device, 1, max(3, repeats // 2))
    bg = session.background(cam)
    out["stage_pair_sums"] = timed(lambda: pair_sums(vp, None, bg, backend=backend), device, 1, max(3, repeats // 2))
    out["stage_prepare_tiles_only"] = timed(lambda: prepare_view(model, cam, plan=False), device, 1, max(3, repeats // 2))
    if compiled:  # the same pair loop through torch.compile (the warm-up call compiles)
        t0 = time.perf_counter()
        pair_sums(vp, None, bg, compiled=True, backend="torch")
        sync(device)
        out["compile_seconds"] = time.perf_counter() - t0
        out["stage_pair_sums_compiled"] = timed(lambda: pair_sums(vp, None, bg, compiled=True, backend="torch"), device, 2, max(3, repeats // 2))
        session.compiled = True
        out["eig_map_compiled"] = timed(lambda: session.eig(cam), device, 2, repeats)
        session.compiled = False
    acq = torch.rand(len(model), device=device)
    out["stage_composite"] = timed(lambda: composite_scalar(vp, acq, backend), device, 1, max(3, repeats // 2))
    return out


def bench_train_step(trainer, views, device, warmup: int, repeats: int) -> dict:
    from faithfusion.train.views import ViewPool

    saved = trainer.real, trainer.pools
    trainer.real, trainer.pools = ViewPool("bench", list(views)), []
    try:
        return timed(trainer.train_step, device, warmup, repeats)
    finally:
        trainer.real, trainer.pools = saved


def bench_train_pass(trainer, device) -> dict:
    """One pass of training iterations over the captured views (as many steps as views)."""
    n = len(trainer.real.views)
    trainer.train_step()  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        trainer.train_step()
    sync(device)
    return {"seconds": time.perf_counter() - t0, "steps": n}


# --- (c) -------------------------------------------------------------------------------------------


def random_scene(n: int = 4000, width: int = 160, height: int = 120, seed: int = 0) -> tuple[GaussianModel, list[Camera]]:
    model = GaussianModel.random(n, extent=1.0, sh_degree=3, seed=seed)
    with torch.no_grad():
        model.params["scales"] -= 1.0
        # anisotropic: with isotropic Gaussians the rotation has no effect and H_quats is exactly 0,
        # so a relative difference of the quats group would only compare rounding noise
        model.params["scales"] += 0.5 * torch.randn(model.params["scales"].shape, generator=torch.Generator().manual_seed(seed + 2))
        model.params["opacities"].uniform_(-2.0, 3.0, generator=torch.Generator().manual_seed(seed))
        model.params["shN"].normal_(0.0, 0.2, generator=torch.Generator().manual_seed(seed + 1))
    K = torch.tensor([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2], [0, 0, 1.0]])
    cams = []
    for k, x in enumerate((0.0, 0.4)):
        vm = torch.eye(4)
        vm[:3, 3] = torch.tensor([x, 0.1 * k, 2.5])
        cams.append(Camera(K=K, viewmat=vm, width=width, height=height, name=f"rand{k}"))
    return model, cams


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double().cpu() - b.double().cpu()).norm() / b.double().cpu().norm().clamp_min(1e-300))


def cpu_vs_device(device: torch.device) -> dict:
    """The same scenes through the same code on the CPU and on `device`, float32 (and float64 for the toy)."""
    out = {}
    for name, (model, cams) in {"toy_float32": toy_scene(dtype=torch.float32), "toy_float64": toy_scene(dtype=torch.float64),
                                "random4000_float32": random_scene()}.items():
        res = {}
        H = {}
        for dev in (torch.device("cpu"), device):
            m = GaussianModel({k: v.detach().to(dev) for k, v in model.params.items()}, model.sh_degree)
            cs = [c.to(dev) for c in cams]
            h = view_fisher(m, cs[0])
            for g, v in view_fisher(m, cs[1]).items():
                h[g] = h[g] + v
            H[dev.type] = h
            res[f"eig_{dev.type}"] = eig_map(m, cs[1], view_fisher(m, cs[0])).eig
        res_out = {f"H_{g}": rel(H[device.type][g], H["cpu"][g]) for g in PARAM_GROUPS}
        res_out["eig_map"] = rel(res[f"eig_{device.type}"], res["eig_cpu"])
        out[name] = res_out
    return out


# --- main --------------------------------------------------------------------------------------------


def train_quick_run(data: Path, out: Path, steps: int, scale: float, device: torch.device) -> Path:
    from faithfusion.train.config import ReconConfig
    from faithfusion.train.recon import run_recon

    cfg = ReconConfig(data=data, out=out, steps=steps, device=device.type, scale=scale, progress=False,
                      ckpt_every=0, overwrite=True, save_renders=False, max_eval_views=4)
    run_recon(cfg)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="a trained run folder")
    src.add_argument("--data", type=Path, help="a scene folder: train a quick run on it first")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train-steps", type=int, default=3000)
    ap.add_argument("--scale", type=float, default=1.0, help="image scale of the quick run")
    ap.add_argument("--width", type=int, default=960)
    ap.add_argument("--height", type=int, default=540)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--calib-views", type=int, default=16)
    ap.add_argument("--max-pairs", type=int, default=0, help="pairs per chunk (0 = 2^23 on CUDA, 2^18 on CPU)")
    ap.add_argument("--form", default="fisherrf", choices=("fisherrf", "faithfusion", "pixel"))
    ap.add_argument("--skip-device-check", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="skip timing the torch.compile'd pair loop")
    ap.add_argument("--analysis", type=Path, default=None, help="SynthStreet scene folder: run the EIG-vs-error analysis")
    ap.add_argument("--analysis-frames", type=int, default=12, help="frames per shift (0 = all)")
    ap.add_argument("--analysis-shifts", default="3,6")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--backend", default="auto", choices=("auto", "torch", "triton"),
                    help="Fisher pair loop (auto: Triton on CUDA); the torch.compile timings always use torch")
    ap.add_argument("--result", type=Path, default=None, help="JSON path (default OUT/bench_eig.json)")
    args = ap.parse_args()

    from faithfusion.train.run import load_run
    from faithfusion.utils.device import resolve_device

    device = resolve_device(args.device)
    os.environ["FAITHFUSION_EIG_BACKEND"] = args.backend  # fisher.resolve_backend: what 'auto' means here
    args.out.mkdir(parents=True, exist_ok=True)
    run = args.run
    t_train = None
    if run is None:
        t0 = time.perf_counter()
        run = train_quick_run(args.data, args.out / "run", args.train_steps, args.scale, device)
        t_train = time.perf_counter() - t0
    loaded = load_run(run, device)
    trainer = loaded.trainer
    result: dict = {
        "benchmark": "eig",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "commit": git_commit(),
        "eig_source_sha256": eig_source_hash(),
        "command": "python " + " ".join(sys.argv),
        "run": str(run),
        "quick_train_seconds": t_train,
        "num_gaussians": len(trainer.model),
        "run_resolution": [trainer.real.views[0].camera.width, trainer.real.views[0].camera.height],
        "train_views": len(trainer.real.views),
        "form": args.form,
        "backend": args.backend,
    }

    def save() -> Path:
        path = args.result or args.out / "bench_eig.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
        return path

    # warm-up outside the timings: Triton and torch.compile (CUDA) build their kernels on the first view
    view_fisher(trainer.model, trainer.real.views[0].camera)
    sync(device)
    # (b, EIG side) H_train over every training view, then the calibration
    # twice: the first pass also builds the kernels for the training views' own size and options (Triton
    # specialises on them), the second is the steady cost that the ratio reports
    kw = dict(form=args.form, calib_views=args.calib_views, max_pairs=args.max_pairs or None, progress=False)
    result["h_train_first_pass"] = build_session(trainer, **kw).timings
    session = build_session(trainer, **kw)
    result["h_train"] = session.timings
    result["calibration"] = {"ref": session.calibration.ref, "quantiles_r_50_90_99": [session.calibration.quantiles[k] for k in (50, 90, 99)]}
    print("H_train", json.dumps(session.timings), flush=True)

    # (a, EIG side) one EIG map at WxH
    view = resized_view(trainer.real.views[0], args.width, args.height)
    result["eig_view"] = bench_eig_view(session, view, device, args.warmup, args.repeats, compiled=not args.no_compile,
                                         backend=args.backend)
    print("EIG map", json.dumps(result["eig_view"]["eig_map"]), flush=True)
    save()

    # (c) CPU vs device
    if not args.skip_device_check:  # on a CPU-only machine this compares the CPU with itself (a smoke test)
        result["cpu_vs_device"] = cpu_vs_device(device)
        print("CPU vs", device, json.dumps(result["cpu_vs_device"]), flush=True)
        save()

    # the analysis (before any timed training step changes the model)
    if args.analysis is not None:
        from faithfusion.commands.eig_analysis import AnalysisConfig, run_analysis

        acfg = AnalysisConfig(run=run, data=args.analysis, out=args.out / "analysis", form=args.form,
                              shifts=tuple(float(s) for s in args.analysis_shifts.split(",")),
                              max_frames=args.analysis_frames, device=device.type, progress=False)
        t0 = time.perf_counter()
        analysis = run_analysis(acfg, session=session, loaded=loaded)
        result["analysis"] = {"seconds": time.perf_counter() - t0, "json": str(args.out / "analysis" / "eig_vs_error.json"),
                              "by_magnitude_spearman": {m: v["spearman"] for m, v in analysis["by_magnitude"].items()}}
        print("analysis", json.dumps(result["analysis"]["by_magnitude_spearman"]), flush=True)
        save()

    # (a, training side) one training iteration on the same WxH view; (b, training side) one pass
    freeze_strategy_steps(trainer)
    result["train_iteration_at_view"] = bench_train_step(trainer, [view], device, args.warmup, args.repeats)
    result["train_pass"] = bench_train_pass(trainer, device)
    e, t = result["eig_view"]["eig_map"]["median_s"], result["train_iteration_at_view"]["median_s"]
    result["ratio_eig_map_over_train_iteration"] = e / t
    if "eig_map_compiled" in result["eig_view"]:
        result["ratio_eig_map_compiled_over_train_iteration"] = result["eig_view"]["eig_map_compiled"]["median_s"] / t
    result["ratio_h_train_over_train_pass"] = session.timings["h_train_s"] / result["train_pass"]["seconds"]
    path = save()
    print(f"EIG map {e * 1e3:.1f} ms vs train iteration {t * 1e3:.1f} ms ({e / t:.2f}x); "
          f"H_train {session.timings['h_train_s']:.2f} s vs train pass {result['train_pass']['seconds']:.2f} s "
          f"({result['ratio_h_train_over_train_pass']:.2f}x)")
    print("wrote", path)


if __name__ == "__main__":
    main()
