"""The papers' measures over renders made on the GPU (benchmarks/gpu/measures.sh), taken on this machine.

    python benchmarks/measures_local.py --packs DIR --work WORK [--seeds 8 9 10]
        [--result benchmarks/results/measures_quick.json] [--report docs/measures_report.html]

DIR holds runs_seed<S>_a.tgz, runs_seed<S>_b.tgz from the device (per method: config.yaml, eval/lane_shift.json, eval/renders/,
eval/views/). For each seed the quick demo's scene is made again here (SynthStreet is deterministic per seed),
each method's saved renders are measured with `faithfusion eval --renders` (PSNR / SSIM / LPIPS, FID / KID against
the ground truth of the same views and against the captured frames, and whatever else the lane-shift protocol
measures), the device's own figures are kept beside them (eval/lane_shift_device.json), and one JSON (mean per
method and |shift| over the seeds, per-seed figures) and one HTML report over every run are written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_commit  # noqa: E402
from faithfusion.commands.demo import DemoConfig, demo_sizes  # noqa: E402
from faithfusion.commands.eval import EvalConfig, run_eval  # noqa: E402
from faithfusion.eval.report_html import collect_run, write_html_report  # noqa: E402
from faithfusion.synth.generate import generate  # noqa: E402
from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402


def unpack(pack: Path, into: Path) -> list[str]:
    """Extract one seed's pack (refusing paths that leave `into`); the method folders it held."""
    if not pack.is_file():
        raise FileNotFoundError(f"{pack}: pack missing (run benchmarks/gpu/measures.sh and bring $OUT/measures back)")
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(pack) as tar:
        for member in tar.getmembers():
            if member.name.startswith("/") or ".." in Path(member.name).parts:
                raise ValueError(f"{pack}: member {member.name!r} leaves the folder")
        tar.extractall(into, filter="data")
        return sorted({Path(m.name).parts[0] for m in tar.getmembers()})


def mean_over_seeds(per_seed: dict[str, dict]) -> dict:
    """method -> |shift| -> measure -> mean over the seeds that have it."""
    out: dict = {}
    for by_method in per_seed.values():
        for method, by_mag in by_method.items():
            for mag, row in by_mag.items():
                for k, v in row.items():
                    if isinstance(v, (int, float)) and v == v:
                        out.setdefault(method, {}).setdefault(mag, {}).setdefault(k, []).append(float(v))
    return {m: {mag: {k: float(np.mean(v)) for k, v in row.items()} for mag, row in by.items()} for m, by in out.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packs", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[8, 9, 10])
    ap.add_argument("--result", type=Path, default=Path("benchmarks/results/measures_quick.json"))
    ap.add_argument("--report", type=Path, default=None)
    ap.add_argument("--no-fid", action="store_true")
    a = ap.parse_args(argv)
    sizes = demo_sizes(DemoConfig(quick=True))
    per_seed, runs, device_figures = {}, [], {}
    for seed in a.seeds:
        folder = a.work / f"seed_{seed}"
        scene = folder / "scene"
        if not (scene / "scene.json").is_file():
            generate(scene, seed, frames=sizes["frames"], width=sizes["width"], height=sizes["height"],
                     shifts=sizes["shifts"], progress=False, overwrite=True)
        packs = sorted(a.packs.glob(f"runs_seed{seed}_*.tgz")) or [a.packs / f"runs_seed{seed}.tgz"]
        methods = sorted({m for pack in packs for m in unpack(pack, folder)} - {"logs"})
        per_seed[str(seed)], device_figures[str(seed)] = {}, {}
        shared_cache = folder / "inception_features.npz"  # the seed's ground truth and captured frames, once
        for method in methods:
            run = folder / method
            cache = run / "eval" / "inception_features.npz"
            if shared_cache.is_file() and not cache.is_file():
                shutil.copy(shared_cache, cache)
            device_json, local_json = run / "eval" / "lane_shift_device.json", run / "eval" / "lane_shift.json"
            if not device_json.is_file():
                shutil.copy(local_json, device_json)  # the device's own PSNR / SSIM / LPIPS on the unrounded renders
            result = run_eval(EvalConfig(run=run, data=scene, renders=run / "eval" / "renders", device="cpu",
                                         fid=not a.no_fid, frame_stride=sizes["frame_stride"]))
            if cache.is_file():
                shutil.copy(cache, shared_cache)
            per_seed[str(seed)][method] = result["by_magnitude"]
            device_figures[str(seed)][method] = json.loads(device_json.read_text())["by_magnitude"]
            runs.append(collect_run(run, f"{method}, seed {seed}"))
    result = {"benchmark": "measures_quick", "commit": git_commit(), "command": "python " + " ".join(sys.argv),
              "renders_from": "benchmarks/gpu/measures.sh (the device named in its fusion_comparison JSON)",
              "measured_on": "CPU (this script)", "seeds": a.seeds, "sizes": {k: v for k, v in sizes.items() if k != "shifts"},
              "mean_by_magnitude": mean_over_seeds(per_seed), "per_seed": per_seed, "device_figures": device_figures}
    save_json_atomic(a.result, result)
    if a.report is not None:
        write_html_report(a.report, runs, title=f"FaithFusion measures: SynthStreet seeds {a.seeds} (quick size)",
                          notes=[f"renders made on the GPU by benchmarks/gpu/measures.sh, measured here by: {result['command']}"])
    for m, by in result["mean_by_magnitude"].items():
        print(m, "  ".join(f"{k} m: " + "/".join(f"{v.get(x, float('nan')):.3f}" for x in ("psnr", "lpips", "fid")) for k, v in by.items()))


if __name__ == "__main__":
    main()
