"""Moving traffic with and without the scene graph (issue 24): every figure of its closing note from one command.

    python benchmarks/bench_scene_graph.py --out DIR [--seeds 8 9] [--parts table strip fusion gpu]
        [--steps 1000] [--device auto] [--methods 3dgs difix3d difix3d+ genfusion faithfusion faithfusion+
        faithfusion-no-eig] [--gpu-seed 8] [--gpu-steps N] [--result JSON]

Parts (each unit writes its result when done and is skipped when run again, so the command resumes):

- `table`: per seed, a dynamic SynthStreet scene at the demo's quick size (16 frames, 192x128, 3 cameras) with
  ground truth at 1..6 m both ways; `recon` background-only and `--scene-graph` (the quick demo's budget); each
  evaluated on the lane-shift protocol (PSNR / SSIM / LPIPS at 0..6 m), and on vehicle pixels: at 0 m the
  held-out frames' whole image, every vehicle (`instance_masks` > 0) and the moving vehicles (`dynamic_masks`),
  at each shift (every 3rd timestep, all cameras, both ways) the moving vehicles (instances of the scene's moving
  tracks in `gt_shifted/*/instance_masks`).
  DIR/table/seed_S/{background_only,scene_graph}.json.
- `strip`: DIR/strip.png, the held-out view of the first seed with the most moving-vehicle pixels at 0 and 3 m:
  ground truth, background only, scene graph (rows), from the rows the `table` runs of that seed saved.
- `fusion`: every fusion method with `--scene-graph` on the dynamic seeds at the quick size
  (`bench_fusion.py --quick --dynamic`, the demo per method). DIR/fusion/fusion_comparison.json.
- `gpu`: 3DGS and FaithFusion at the full demo size (40 frames, 480x320, 7000 steps) with `--scene-graph` on one
  dynamic seed (`faithfusion demo --dynamic`; resumes from its checkpoints). DIR/gpu_seed_S/demo.json.

The summary (--result, default DIR/scene_graph.json) collects whatever parts are done.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, git_commit  # noqa: E402

from faithfusion.utils.device import resolve_device  # noqa: E402
from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402

ALL_METHODS = ("3dgs", "difix3d", "difix3d+", "genfusion", "faithfusion", "faithfusion+", "faithfusion-no-eig")
QUICK = {"frames": 16, "width": 192, "height": 128}
SHIFTS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
STRIP_SHIFTS = (0.0, 3.0)
FRAME_STRIDE = 3  # shifted views: every 3rd timestep, all cameras (the quick demo's lane-shift protocol)


def masked_psnr(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> float | None:
    """PSNR over the pixels of `mask [H, W]` (None when it is empty)."""
    if not mask.any():
        return None
    mse = ((pred - gt) ** 2)[mask].mean()
    return float(-10 * torch.log10(mse.clamp_min(1e-10)))


def load_mask(path: Path) -> torch.Tensor:
    """`[H, W]` int64 of a mask PNG (0 = none)."""
    return torch.from_numpy(np.asarray(Image.open(path)).astype(np.int64))


def moving_instance_ids(scene) -> set[int]:
    """The instance ids (instances_info.json keys) of the moving vehicle tracks: the scene graph's nodes."""
    from faithfusion.scene_graph.tracks import tracks_from_scene

    return {int(t.key) for t in tracks_from_scene(scene).moving_vehicles(scene.transform.metres_to_scene(1.0))}


def mean_of(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def vehicle_psnr(render_fn, scene, root: Path, moving: set[int], shifts: tuple[float, ...]) -> dict:
    """Held-out frames at 0 m: whole image, all vehicles, moving vehicles (dynamic_masks); every frame at each
    shift (both ways): moving-vehicle pixels of the instance masks. PSNR per view, averaged over the views with
    such pixels."""
    from faithfusion.eval.lane_shift import shift_folder, shift_views

    out: dict = {}
    rows = []
    for i, cam, gt in shift_views(scene, root, 0.0, list(scene.test_ids), 1.0).items:
        f = scene.frames[i]
        name = f"{f.timestep:03d}_{f.cam_name}.png"
        with torch.no_grad():
            pred = render_fn(cam).clamp(0, 1).cpu()
        vehicle = load_mask(shift_folder(root, 0.0) / "instance_masks" / name) > 0
        dyn = load_mask(root / "dynamic_masks" / "vehicle" / name) > 0
        rows.append({"frame": i, "all": masked_psnr(pred, gt, torch.ones_like(vehicle)), "vehicle": masked_psnr(pred, gt, vehicle),
                     "moving_vehicle": masked_psnr(pred, gt, dyn), "moving_pixels": int(dyn.sum())})
    out["0m"] = {k: mean_of(rows, k) for k in ("all", "vehicle", "moving_vehicle")} | {"views": rows}
    ids = [i for i, f in enumerate(scene.frames) if f.timestep % FRAME_STRIDE == 0]  # the lane-shift table's views
    for d in shifts:
        rows = []
        for sd in (d, -d):
            for i, cam, gt in shift_views(scene, root, sd, ids, 1.0).items:
                f = scene.frames[i]
                inst = load_mask(shift_folder(root, sd) / "instance_masks" / f"{f.timestep:03d}_{f.cam_name}.png")
                mask = torch.zeros_like(inst, dtype=torch.bool)
                for k in moving:
                    mask |= inst == k + 1
                if not mask.any():
                    continue
                with torch.no_grad():
                    pred = render_fn(cam).clamp(0, 1).cpu()
                rows.append({"moving_vehicle": masked_psnr(pred, gt, mask), "all": masked_psnr(pred, gt, torch.ones_like(mask))})
        out[f"{d:.1f}m"] = {"moving_vehicle": mean_of(rows, "moving_vehicle"), "all_same_views": mean_of(rows, "all"),
                            "views": len(rows)}
    return out


def table_scene(out: Path, seed: int) -> Path:
    from faithfusion.synth.generate import generate

    root = out / "table" / f"seed_{seed}" / "scene"
    if not (root / "scene.json").is_file():
        generate(root, seed, frames=QUICK["frames"], width=QUICK["width"], height=QUICK["height"], shifts=SHIFTS,
                 dynamic=True, observation=False, overwrite=True)
    return root


def table_run(out: Path, seed: int, graph: bool, steps: int, device: str, strip: bool = False,
              shifts: tuple[float, ...] = SHIFTS) -> dict:
    """One (seed, background-only | scene graph) run of the `table` part: trained, evaluated, written; with `strip`
    also its row of the picture strip (DIR/table/seed_S/strip_{run}.png, and the ground truth's)."""
    from faithfusion.eval.lane_shift import evaluate_lane_shift
    from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig
    from faithfusion.train.recon import release_run_lock, train_run

    name = "scene_graph" if graph else "background_only"
    path = out / "table" / f"seed_{seed}" / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    root = table_scene(out, seed)
    cfg = ReconConfig(data=root, out=out / "table" / f"seed_{seed}" / f"run_{name}", steps=steps, device=device,
                      progress=False, holdout_every=10, ckpt_every=0, save_renders=False, overwrite=True,
                      scene_graph=graph, init=InitConfig(max_points=10_000, random_points=2_000),
                      strategy=StrategyConfig(refine_stop=int(0.75 * steps)))  # the quick demo's recon
    t0 = time.perf_counter()
    trainer, scene = train_run(cfg)
    release_run_lock(Path(cfg.out))
    seconds = time.perf_counter() - t0

    def render_fn(cam):
        return trainer.render_camera(cam.to(trainer.device))[0]

    lane = evaluate_lane_shift(render_fn, scene, root, shifts=list(shifts), frame_stride=FRAME_STRIDE)
    result = {"seed": seed, "run": name, "steps": steps, "train_seconds": seconds, "num_gaussians": len(trainer.model),
              "nodes": trainer.graph.num_nodes if trainer.graph is not None else 0,
              "node_gaussians": trainer.graph.node_counts() if trainer.has_nodes else [],
              "lane_shift": lane["by_magnitude"], "lpips_net": lane["lpips_net"],
              "vehicle_psnr": vehicle_psnr(render_fn, scene, root, moving_instance_ids(scene), shifts)}
    if strip:
        folder = path.parent
        frame = strip_frame(scene, root)
        save_png(folder / f"strip_{name}.png", strip_row(render_fn, scene, root, frame))
        save_png(folder / "strip_gt.png", strip_row(render_fn, scene, root, frame, gt=True))
        save_json_atomic(folder / "strip.json", {"frame": frame, "timestep": scene.frames[frame].timestep,
                                                 "camera": scene.frames[frame].cam_name})
    save_json_atomic(path, result)
    print(f"table seed {seed} {name}: 0 m all {result['vehicle_psnr']['0m']['all']:.2f} vehicle "
          f"{result['vehicle_psnr']['0m']['vehicle']} moving {result['vehicle_psnr']['0m']['moving_vehicle']} "
          f"({result['nodes']} nodes, {seconds:.0f} s)", flush=True)
    return result


def strip_frame(scene, root: Path) -> int:
    """The held-out view with the most moving-vehicle pixels (dynamic_masks/vehicle)."""
    def pixels(i: int) -> int:
        f = scene.frames[i]
        return int((load_mask(root / "dynamic_masks" / "vehicle" / f"{f.timestep:03d}_{f.cam_name}.png") > 0).sum())

    return max(scene.test_ids, key=pixels)


def save_png(path: Path, img: torch.Tensor) -> None:
    """`[H, W, 3]` in [0, 1] as a PNG, written atomically."""
    from faithfusion.utils.atomic import atomic_write

    arr = (img.clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    atomic_write(path, save=lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"), what="strip")


def strip_row(render_fn, scene, root: Path, frame: int, gt: bool = False) -> torch.Tensor:
    """The frame at 0 m | 3 m `[H, 2W, 3]`: rendered, or the ground truth."""
    from faithfusion.eval.lane_shift import shift_views

    cols = []
    for d in STRIP_SHIFTS:
        (_, cam, image), = shift_views(scene, root, d, [frame], 1.0).items
        if not gt:
            with torch.no_grad():
                image = render_fn(cam).clamp(0, 1).cpu()
        cols.append(image)
    return torch.cat(cols, dim=1)


def write_strip(out: Path, seed: int) -> Path:
    """DIR/strip.png: ground truth / background only / scene graph (rows) at 0 and 3 m (columns), from the rows the
    `table` runs of `seed` saved."""
    folder = out / "table" / f"seed_{seed}"
    rows = [torch.from_numpy(np.asarray(Image.open(folder / f"strip_{k}.png")).astype(np.float32) / 255.0)
            for k in ("gt", "background_only", "scene_graph")]
    path = out / "strip.png"
    save_png(path, torch.cat(rows, dim=0))
    meta = json.loads((folder / "strip.json").read_text())
    save_json_atomic(out / "strip.json", meta | {"seed": seed, "rows": ["ground truth", "background only", "scene graph"],
                                                 "columns_m": list(STRIP_SHIFTS)})
    return path


def run_fusion(out: Path, seeds: list[int], methods: list[str], device: str, steps: int | None) -> dict | None:
    import bench_fusion

    argv = ["--out", str(out / "fusion"), "--seeds", *map(str, seeds), "--quick", "--dynamic", "--device", device,
            "--methods", *methods]
    if steps is not None:
        argv += ["--steps", str(steps)]
    bench_fusion.main(argv)
    return json.loads((out / "fusion" / "fusion_comparison.json").read_text())


def run_gpu(out: Path, seed: int, device: str, steps: int | None) -> dict:
    from faithfusion.commands.demo import DemoConfig, run_demo

    folder = out / f"gpu_seed_{seed}"
    done = folder / "demo.json"
    if done.is_file() and set(json.loads(done.read_text()).get("by_magnitude", {})) >= {"3dgs", "faithfusion"}:
        return json.loads(done.read_text())
    run_demo(DemoConfig(out=folder, seed=seed, device=device, methods=("3dgs", "faithfusion"), dynamic=True, steps=steps,
                        resume=folder.is_dir() and any(folder.iterdir()), fid=False, video_frames=0))
    return json.loads(done.read_text())


def table_summary(runs: dict) -> dict:
    """Mean over seeds of each run's lane-shift PSNR / LPIPS and vehicle PSNR."""
    out = {}
    for name in ("background_only", "scene_graph"):
        rs = [r for (s, n), r in runs.items() if n == name]
        if not rs:
            continue
        mags = sorted(rs[0]["lane_shift"], key=float)
        out[name] = {
            "seeds": [r["seed"] for r in rs],
            "lane_shift": {m: {k: float(np.mean([r["lane_shift"][m][k] for r in rs])) for k in ("psnr", "ssim", "lpips")
                               if rs[0]["lane_shift"][m].get(k) is not None} for m in mags},
            "psnr_0m": {k: mean_of([r["vehicle_psnr"]["0m"] for r in rs], k) for k in ("all", "vehicle", "moving_vehicle")},
            "moving_vehicle_psnr_by_shift": {m: mean_of([r["vehicle_psnr"][m] for r in rs], "moving_vehicle")
                                             for m in rs[0]["vehicle_psnr"] if m != "0m"},
        }
    if len(out) == 2:
        a, b = out["scene_graph"]["psnr_0m"], out["background_only"]["psnr_0m"]
        out["checks"] = {
            "vehicle_gain_db": None if a["vehicle"] is None or b["vehicle"] is None else a["vehicle"] - b["vehicle"],
            "moving_vehicle_gain_db": None if a["moving_vehicle"] is None or b["moving_vehicle"] is None
            else a["moving_vehicle"] - b["moving_vehicle"],
            "vehicle_below_whole_image_db": None if a["vehicle"] is None else a["all"] - a["vehicle"],
            "targets": "vehicle gain >= 5 dB; vehicle PSNR within 1.5 dB of the whole image (issue 24)",
        }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[8, 9])
    ap.add_argument("--parts", nargs="+", default=["table", "strip", "fusion", "gpu"], choices=["table", "strip", "fusion", "gpu"])
    ap.add_argument("--shifts", type=float, nargs="+", default=list(SHIFTS), help="lane shifts of the table (metres)")
    ap.add_argument("--steps", type=int, default=1000, help="recon steps of the table runs (the quick demo's 1000)")
    ap.add_argument("--fusion-steps", type=int, default=None, help="steps per fusion method (default: the quick demo's)")
    ap.add_argument("--methods", nargs="+", default=list(ALL_METHODS))
    ap.add_argument("--gpu-seed", type=int, default=8)
    ap.add_argument("--gpu-steps", type=int, default=None, help="steps per method at the full size (default: the demo's 7000)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--result", type=Path, default=None)
    a = ap.parse_args(argv)
    device = str(resolve_device(a.device))
    result = {"benchmark": "scene_graph", "command": "python " + " ".join(sys.argv if argv is None else ["benchmarks/bench_scene_graph.py", *argv]),
              "commit": git_commit(), "device": device_name(resolve_device(a.device)), "seeds": a.seeds,
              "table_size": "quick (16 frames, 192x128, 3 cameras), recon " + str(a.steps) + " steps"}
    runs = {}
    if "table" in a.parts:
        for seed in a.seeds:
            for graph in (False, True):
                r = table_run(a.out, seed, graph, a.steps, device, strip=seed == a.seeds[0], shifts=tuple(a.shifts))
                runs[(seed, r["run"])] = r
        result["table"] = table_summary(runs)
        result["table_per_seed"] = {f"{s}/{n}": {k: r[k] for k in ("lane_shift", "train_seconds", "nodes", "num_gaussians")}
                                    | {"psnr_0m": {k: v for k, v in r["vehicle_psnr"]["0m"].items() if k != "views"}}
                                    for (s, n), r in runs.items()}
    if "strip" in a.parts:
        result["strip"] = str(write_strip(a.out, a.seeds[0]))
    if "fusion" in a.parts:
        fusion = run_fusion(a.out, a.seeds, a.methods, device, a.fusion_steps)
        result["fusion"] = {k: fusion[k] for k in ("mean_by_magnitude", "seeds_per_method", "steps_per_method", "sizes")}
    if "gpu" in a.parts:
        demo = run_gpu(a.out, a.gpu_seed, device, a.gpu_steps)
        result["gpu"] = {"seed": a.gpu_seed, "by_magnitude": demo["by_magnitude"], "seconds": demo.get("seconds"),
                         "sizes": demo.get("sizes")}
    path = a.result or a.out / "scene_graph.json"
    save_json_atomic(path, result)
    for name, t in result.get("table", {}).items():
        if name != "checks":
            print(name, "0 m:", {k: None if v is None else round(v, 2) for k, v in t["psnr_0m"].items()},
                  "lane shift PSNR:", {m: round(v["psnr"], 2) for m, v in t["lane_shift"].items()})
    print("checks:", result.get("table", {}).get("checks"), "->", path)


if __name__ == "__main__":
    main()
