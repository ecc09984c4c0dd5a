"""FaithFusion+'s post-fix floor, swept on finished FaithFusion runs of a bench_fusion folder without training
again: for each floor f the final renders are fixed by Difix and blended by f + (1 - f) * EIG soft mask, and
evaluated with the comparison's lane-shift protocol and sizes.

    python benchmarks/sweep_post_fix_floor.py --out DIR --seeds 0 --floors 0 0.25 0.5 0.75 1 --result F.json

The EIG soft mask of each evaluated camera is computed once and reused for every floor (it does not depend on
the floor). Writes F.json: per floor, the mean PSNR / SSIM / LPIPS per |shift| over the seeds and the per-seed
figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402

from faithfusion.eval.lane_shift import evaluate_lane_shift  # noqa: E402
from faithfusion.fusion.pools import post_render_fixer  # noqa: E402
from faithfusion.fusion.runner import load_fusion_run  # noqa: E402


def cached(fn):
    """camera -> tensor, memoised on the camera's pose and intrinsics."""
    memo = {}

    def call(camera):
        key = (camera.viewmat.cpu().numpy().tobytes(), camera.K.cpu().numpy().tobytes(), camera.width, camera.height)
        if key not in memo:
            memo[key] = fn(camera).cpu()
        return memo[key]

    return call


def main(argv: list[str] | None = None) -> None:
    import json

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="the bench_fusion.py folder")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--source", default="faithfusion", help="the finished runs (faithfusion)")
    ap.add_argument("--floors", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    ap.add_argument("--result", type=Path, required=True)
    a = ap.parse_args(argv)
    per_seed: dict[str, dict[str, dict]] = {f"{f:g}": {} for f in a.floors}
    for seed in a.seeds:
        folder = a.out / f"seed_{seed}"
        done = folder / a.source / "demo_method.json"
        if not done.is_file():
            raise SystemExit(f"{done}: no finished {a.source} run for seed {seed} (run bench_fusion.py first)")
        sizes = json.loads(done.read_text())["sizes"]
        run = load_fusion_run(folder / a.source, "faithfusion+")
        trainer, scene, method = run.trainer, run.scene, run.method
        if not method.use_eig:
            raise SystemExit(f"{folder / a.source}: a run without EIG has no gate to put a floor under")
        mask = cached(method.eig_soft_mask(trainer))
        for f in a.floors:
            t0 = time.perf_counter()
            hook = post_render_fixer(trainer, method.difix.fixer, method.refs, gate=method.post_fix_gate(trainer, mask, f))
            res = evaluate_lane_shift(hook, scene, folder / "scene", list(sizes["shifts"]), sizes["frame_stride"])
            per_seed[f"{f:g}"][str(seed)] = res["by_magnitude"]
            print(f"floor {f:g} seed {seed}", {d: (round(v["psnr"], 2), round(v["lpips"], 3)) for d, v in res["by_magnitude"].items()},
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    mean = {}
    for f, seeds in per_seed.items():
        shifts = next(iter(seeds.values()))
        mean[f] = {d: {k: float(np.mean([seeds[s][d][k] for s in seeds])) for k in ("psnr", "ssim", "lpips")} for d in shifts}
    save_json_atomic(a.result, {"benchmark": "post_fix_floor_sweep", "seeds": a.seeds, "source": a.source, "floors": a.floors,
                          "command": " ".join(sys.argv), "mean_by_magnitude": mean, "per_seed": per_seed})


if __name__ == "__main__":
    main()
