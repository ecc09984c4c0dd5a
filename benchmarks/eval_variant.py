"""Evaluate a render-hook variant (faithfusion+) on the finished runs of the method it trains as, in a
bench_fusion folder, without training again.

    python benchmarks/eval_variant.py --out DIR --seeds 8 9 10 --variant faithfusion+ [--source faithfusion] [--name NAME]

For each seed, DIR/seed_S/SOURCE (a finished `bench_fusion.py` run) is rebuilt from its final round checkpoint
(`load_fusion_run`) as VARIANT, its render function is evaluated with the same lane-shift protocol and sizes,
and DIR/seed_S/VARIANT/demo_method.json is written in bench_fusion's format, so `bench_fusion.py --no-run
--methods ... VARIANT` aggregates it beside the others. Its seconds are SOURCE's plus this evaluation's.
`--variant faithfusion+-no-eig` evaluates the ablation's runs (faithfusion-no-eig) the same way (no EIG: the
post-render fix is taken everywhere, as in Difix3D+).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402

from faithfusion.eval.lane_shift import evaluate_lane_shift  # noqa: E402
from faithfusion.fusion.presets import PRESETS, preset  # noqa: E402
from faithfusion.fusion.runner import load_fusion_run  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="the bench_fusion.py folder")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--variant", default="faithfusion+", choices=[n for n, p in PRESETS.items() if p.trains_as])
    ap.add_argument("--source", default=None, help="the trained method (default: the one the variant trains as)")
    ap.add_argument("--name", default=None, help="the folder and row name (default: the variant)")
    a = ap.parse_args(argv)
    source = a.source or preset(a.variant).trains_as
    name = a.name or a.variant
    for seed in a.seeds:
        folder = a.out / f"seed_{seed}"
        done = folder / source / "demo_method.json"
        if not done.is_file():
            raise SystemExit(f"{done}: no finished {source} run for seed {seed} (run bench_fusion.py first)")
        rec = json.loads(done.read_text())
        t0 = time.perf_counter()
        run = load_fusion_run(folder / source, a.variant)
        trainer, scene, hook = run.trainer, run.scene, run.render
        sizes = rec["sizes"]
        result = evaluate_lane_shift(hook, scene, folder / "scene", list(sizes["shifts"]), sizes["frame_stride"])
        seconds = time.perf_counter() - t0
        (folder / name / "eval").mkdir(parents=True, exist_ok=True)
        save_json_atomic(folder / name / "eval" / "lane_shift.json", result)
        note = (f"{name}: the finished {source} run of the seed (same training), evaluated through its render "
                f"hook by benchmarks/eval_variant.py; seconds = {source}'s + this evaluation's")
        save_json_atomic(folder / name / "demo_method.json", {
            "by_magnitude": result["by_magnitude"], "seconds": rec["seconds"] + seconds, "eval_seconds": seconds,
            "notes": rec["notes"] + [note], "sizes": sizes})
        print(name, seed, {k: round(v["psnr"], 2) for k, v in result["by_magnitude"].items()}, f"{seconds:.0f} s")


if __name__ == "__main__":
    main()
