"""The fusion comparison: every method on several held-out SynthStreet seeds, the same step budget.

    python benchmarks/bench_fusion.py --out DIR [--seeds 8 9 10] [--quick] [--dynamic] [--steps N]
        [--methods 3dgs difix3d difix3d+ faithfusion faithfusion-no-eig] [--result benchmarks/results/NAME.json]
        [--demo-args="--faithfusion.no-paired --faithfusion.loss-weight 0.3 --difix3d.paired"] [--save-renders]

Each (seed, method) is one `faithfusion demo --methods M` run in DIR/seed_S (the seed's scene is generated
once and shared); a method whose DIR/seed_S/M/eval/lane_shift.json exists is not run again (resume). The
`--dynamic`: dynamic SynthStreet scenes (moving traffic) and every method on the scene graph (`demo --dynamic`).
The JSON holds, per method, the mean PSNR / SSIM / LPIPS at every |shift| over the seeds, the per-seed figures
and wall times (the method's whole demo time: training, rounds and evaluation); the PNG beside it plots them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, git_commit  # noqa: E402
from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402

from faithfusion.eval.lane_shift import plot_lane_shift  # noqa: E402
from faithfusion.commands.demo import DemoConfig, run_demo  # noqa: E402
from faithfusion.utils.device import resolve_device  # noqa: E402

DEFAULT_METHODS = ("3dgs", "difix3d", "difix3d+", "faithfusion", "faithfusion-no-eig")


def mean_curves(runs: list[dict], method: str) -> dict[str, dict[str, float]]:
    """Mean of each metric at each |shift| over the seeds' by_magnitude curves of `method`."""
    mags = sorted({m for r in runs for m in r["by_magnitude"][method]}, key=float)
    out = {}
    for m in mags:
        rows = [r["by_magnitude"][method][m] for r in runs if m in r["by_magnitude"][method]]
        out[m] = {k: float(np.mean([row[k] for row in rows])) for k in rows[0] if isinstance(rows[0][k], (int, float))}
    return out


def demo_schedules(demo_args: str) -> dict:
    """The fusion schedules that `faithfusion demo` would build from `demo_args` (its own flags, parsed by
    tyro: e.g. "--faithfusion.no-paired --faithfusion.loss-weight 0.3"), as DemoConfig keyword arguments."""
    import shlex

    import tyro

    cfg = tyro.cli(DemoConfig, args=shlex.split(demo_args))
    return {"difix3d": cfg.difix3d, "genfusion": cfg.genfusion, "faithfusion": cfg.faithfusion}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[8, 9, 10])
    ap.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    ap.add_argument("--quick", action="store_true", help="the demo's CPU size (192x128, 16 frames, 1000 steps)")
    ap.add_argument("--dynamic", action="store_true", help="moving traffic, every method with --scene-graph (demo --dynamic)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--result", type=Path, default=None)
    ap.add_argument("--no-run", action="store_true", help="only aggregate the (seed, method) runs already done")
    ap.add_argument("--save-renders", action="store_true",
                    help="keep every evaluated render as PNG (SEED/METHOD/eval/renders) for `faithfusion eval --renders`")
    ap.add_argument("--demo-args", default="", metavar="FLAGS",
                    help="`faithfusion demo` schedule flags for the fusion methods, one string (recorded in the result)")
    a = ap.parse_args(argv)
    schedules = demo_schedules(a.demo_args)
    runs = []
    for seed in a.seeds:
        folder = a.out / f"seed_{seed}"
        run = {"seed": seed, "by_magnitude": {}, "seconds": {}, "notes": []}
        for method in a.methods:
            done = folder / method / "demo_method.json"
            if not done.is_file() and a.no_run:
                continue
            if not done.is_file():
                run_demo(DemoConfig(out=folder, quick=a.quick, seed=seed, device=a.device, methods=(method,),
                                    steps=a.steps, overwrite=True, save_renders=a.save_renders, dynamic=a.dynamic,
                                    **schedules))
                demo = json.loads((folder / "demo.json").read_text())
                save_json_atomic(done, {"by_magnitude": demo["by_magnitude"][method], "seconds": demo["seconds"][method],
                                  "notes": demo["notes"], "sizes": demo["sizes"]})
            rec = json.loads(done.read_text())
            run["by_magnitude"][method], run["seconds"][method] = rec["by_magnitude"], rec["seconds"]
            run["notes"] += rec["notes"]
            run["sizes"] = rec["sizes"]
        runs.append(run)
    curves = {m: mean_curves([r for r in runs if m in r["by_magnitude"]], m) for m in a.methods
              if any(m in r["by_magnitude"] for r in runs)}
    result = {
        "benchmark": "fusion_comparison", "commit": git_commit(), "command": "python " + " ".join(sys.argv),
        "seeds": a.seeds, "seeds_per_method": {m: [r["seed"] for r in runs if m in r["by_magnitude"]] for m in a.methods},
        "sizes": next(r["sizes"] for r in runs if "sizes" in r), "steps_per_method": next(r["sizes"] for r in runs if "sizes" in r)["steps"] if a.steps is None else a.steps,
        "demo_args": a.demo_args, "dynamic": a.dynamic, "device": device_name(resolve_device(a.device)),
        "notes": sorted({n for r in runs for n in r["notes"]}), "mean_by_magnitude": curves,
        "per_seed": {str(r["seed"]): {"by_magnitude": r["by_magnitude"], "seconds": r["seconds"]} for r in runs},
    }
    path = a.result or a.out / "fusion_comparison.json"
    save_json_atomic(path, result)
    plot_lane_shift(curves, path.with_suffix(".png"), title=f"SynthStreet seeds {a.seeds}: mean over seeds")
    for m, c in curves.items():
        print(m, "  ".join(f"{k} m: {v['psnr']:.2f}/{v.get('lpips', float('nan')):.3f}" for k, v in c.items()))


if __name__ == "__main__":
    main()
