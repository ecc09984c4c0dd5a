"""The EIG ablation: FaithFusion with the map against the same loop without its spatial information.

    python benchmarks/bench_ablation.py --out DIR [--seeds 8 9 10 11 12] [--quick] [--steps N] [--device cuda]
        [--arms eig uniform shuffled none eig_repeat 3dgs] [--demo-args="--faithfusion.pool replace ..."]
        [--prepare] [--only SEED:ARM ...] [--no-run] [--result PATH] [--bootstrap 2000]

Arms (fusion/weighting.py; every fusion arm is `faithfusion` with the same schedule but `--faithfusion.weighting`):
  eig        (a) the map: EIG loss weights, EIG condition, EIG blend mask
  uniform    (b) each view's maps replaced by their own mean
  shuffled   (c) each view's pixels permuted at random (weight, condition and mask together)
  none       (d) no EIG (= faithfusion-no-eig)
  eig_repeat (a) again, the same configuration: run-to-run noise
  eig_carried (a) with H_train recomputed only at the first round and carried (densification lineage, plus each
             round's fused views) after: `--faithfusion.h-train-refresh 1000`
  3dgs       the plain reconstruction (the 0 m reference)
Each (seed, arm) is one `faithfusion demo` folder DIR/seed_S/ARM whose scene is a link to DIR/seed_S/scene
(`--prepare` generates the scenes first, so that concurrent arms share one). An arm whose DIR/seed_S/ARM/arm.json
exists is done; an unfinished one resumes (`demo --resume`: from its newest round checkpoint). `--only` runs just
those (seed, arm) pairs, so a driver can run several at once (benchmarks/gpu/ablation.sh).

The result: per arm the mean PSNR / SSIM / LPIPS at each |shift| over the seeds, and the paired differences
(a) - (b), (a) - (c), (a) - (d) and (a) - (a repeat) per view (same frame, same shift and side), with 95 %
intervals of the hierarchical bootstrap (seeds, then views: faithfusion/eval/bootstrap.py). PSNR: > 0 is (a)
ahead; LPIPS: < 0 is (a) ahead. At 0 m also (a) - 3dgs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fusion import demo_schedules  # noqa: E402
from common import device_name, git_commit  # noqa: E402
from faithfusion.eval.bootstrap import hierarchical_bootstrap  # noqa: E402
from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402

ARMS: dict[str, tuple[str, dict]] = {
    "eig": ("faithfusion", {"weighting": "eig"}),
    "uniform": ("faithfusion", {"weighting": "uniform"}),
    "shuffled": ("faithfusion", {"weighting": "shuffled"}),
    "none": ("faithfusion", {"weighting": "none"}),
    "eig_repeat": ("faithfusion", {"weighting": "eig"}),
    "eig_carried": ("faithfusion", {"weighting": "eig", "h_train_refresh": 1000}),
    "3dgs": ("3dgs", {}),
}
"""arm -> (method preset, the FaithFusion schedule fields it sets on top of --demo-args)."""
DEFAULT_ARMS = ("eig", "uniform", "shuffled", "none", "eig_repeat", "3dgs")
"""The arms of the EIG ablation; `eig_carried` (a speed option's quality check) runs only when asked for."""
REFERENCE = "eig"
COMPARED = ("uniform", "shuffled", "none", "eig_repeat", "eig_carried")
MEASURES = ("psnr", "lpips")


class AblationError(ValueError):
    pass


def prepare_scene(out: Path, seed: int, quick: bool) -> Path:
    """DIR/seed_S/scene at the demo's size, generated once (into a temporary folder, then renamed)."""
    from faithfusion.commands.demo import DemoConfig, demo_sizes
    from faithfusion.synth.generate import generate

    scene = out / f"seed_{seed}" / "scene"
    if (scene / "scene.json").is_file():
        return scene
    sizes = demo_sizes(DemoConfig(quick=quick, seed=seed))
    tmp = scene.with_name("scene.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    generate(tmp, seed, frames=sizes["frames"], width=sizes["width"], height=sizes["height"], shifts=sizes["shifts"],
             progress=False, overwrite=True)
    shutil.rmtree(scene, ignore_errors=True)
    tmp.rename(scene)
    return scene


def run_arm(out: Path, seed: int, arm: str, a: argparse.Namespace) -> Path:
    """Run (or resume) one (seed, arm) demo; writes DIR/seed_S/ARM/arm.json."""
    from faithfusion.commands.demo import DemoConfig, run_demo

    method, fields = ARMS[arm]
    folder = out / f"seed_{seed}" / arm
    done = folder / "arm.json"
    if done.is_file():
        return done
    scene = prepare_scene(out, seed, a.quick)
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "scene"
    if not link.exists():
        link.symlink_to(Path("..") / scene.name)
    schedules = demo_schedules(a.demo_args)
    if fields:
        schedules["faithfusion"] = replace(schedules["faithfusion"], **fields)
    resume = (folder / "demo_seconds.json").is_file()
    run_demo(DemoConfig(out=folder, quick=a.quick, seed=seed, device=a.device, methods=(method,), steps=a.steps,
                        resume=resume, overwrite=not resume, **schedules))
    demo = json.loads((folder / "demo.json").read_text())
    lane = json.loads((folder / method / "eval" / "lane_shift.json").read_text())
    save_json_atomic(done, {"seed": seed, "arm": arm, "method": method, "weighting": fields.get("weighting"), "demo_args": a.demo_args,
                            "schedule": fields,
                            "sizes": demo["sizes"], "seconds": demo["seconds_all_commands"].get(method),
                            "train_seconds": demo["train_seconds"].get(method), "threads": torch.get_num_threads(),
                            "by_magnitude": lane["by_magnitude"], "per_shift": lane["per_shift"]})
    return done


def per_view(rec: dict, magnitude: float) -> dict[tuple[str, int], dict]:
    """The frames of `rec` at |shift| = magnitude, keyed by (signed shift, frame)."""
    return {(key, row["frame"]): row for key, v in rec["per_shift"].items() if abs(float(v["shift"])) == magnitude
            for row in v["frames"]}


def paired_differences(a: dict, b: dict, magnitude: float) -> np.ndarray:
    """`[V, 2]` per-view (a - b) of PSNR and LPIPS on the views both evaluated (same frame, shift and side)."""
    va, vb = per_view(a, magnitude), per_view(b, magnitude)
    keys = sorted(set(va) & set(vb))
    return np.array([[va[k][m] - vb[k][m] if va[k].get(m) is not None else np.nan for m in MEASURES] for k in keys],
                    np.float64).reshape(len(keys), len(MEASURES))


def compare(records: dict[int, dict[str, dict]], first: str, second: str, magnitudes: list[float],
            n: int, seed: int = 0) -> dict:
    """Per |shift|: the mean over seeds of (first - second) per measure with its hierarchical-bootstrap 95 % interval."""
    seeds = [s for s in sorted(records) if first in records[s] and second in records[s]]
    out = {}
    for mag in magnitudes:
        diffs = [paired_differences(records[s][first], records[s][second], mag) for s in seeds]
        diffs = [d for d in diffs if d.shape[0] > 0]
        if not diffs:
            continue
        ci = hierarchical_bootstrap(diffs, n=n, seed=seed)
        out[f"{mag:.1f}"] = {m: {"mean": float(ci.mean[k]), "lo": float(ci.lo[k]), "hi": float(ci.hi[k])}
                             for k, m in enumerate(MEASURES)} | {"scenes": ci.n_scenes, "views": ci.n_views}
    return out


def mean_by_magnitude(records: dict[int, dict[str, dict]], arm: str) -> dict:
    rows = [r[arm]["by_magnitude"] for r in records.values() if arm in r]
    mags = sorted({m for r in rows for m in r}, key=float)
    return {m: {k: float(np.mean([r[m][k] for r in rows if m in r])) for k in ("psnr", "ssim", "lpips")
                if all(r[m].get(k) is not None for r in rows if m in r)} | {"seeds": sum(m in r for r in rows)}
            for m in mags}


def aggregate(out: Path, seeds: list[int], arms: list[str], n: int) -> dict:
    records: dict[int, dict[str, dict]] = {}
    for s in seeds:
        for arm in arms:
            path = out / f"seed_{s}" / arm / "arm.json"
            if path.is_file():
                records.setdefault(s, {})[arm] = json.loads(path.read_text())
    found = [r for rec in records.values() for r in rec.values()]
    if len({r["demo_args"] for r in found}) > 1:
        raise AblationError(f"{out}: arms run with different --demo-args {sorted({r['demo_args'] for r in found})}; "
                            "use one folder per configuration")
    missing = [f"{s}:{arm}" for s in seeds for arm in arms if arm not in records.get(s, {})]
    paired = {f"{REFERENCE}-{b}": compare(records, REFERENCE, b, [1.0, 3.0, 6.0], n) for b in COMPARED if b in arms}
    result = {
        "arms": {arm: {"method": ARMS[arm][0], **ARMS[arm][1]} for arm in arms},
        "complete": not missing, "missing": missing,
        "mean_by_magnitude": {arm: mean_by_magnitude(records, arm) for arm in arms if any(arm in r for r in records.values())},
        "paired": paired,
        "noise": paired.get(f"{REFERENCE}-eig_repeat", {}),
        "sizes": found[0]["sizes"] if found else None, "demo_args": found[0]["demo_args"] if found else None,
        "threads": sorted({r.get("threads") for r in found}),
        "seconds": {arm: {str(s): records[s][arm]["seconds"] for s in records if arm in records[s]} for arm in arms},
    }
    if "3dgs" in arms:
        result["paired"][f"{REFERENCE}-3dgs"] = compare(records, REFERENCE, "3dgs", [0.0], n)
    return result


def parse_only(items: list[str], arms: list[str]) -> list[tuple[int, str]]:
    pairs = []
    for item in items:
        seed, _, arm = item.partition(":")
        if not seed.isdigit() or arm not in ARMS:
            raise AblationError(f"--only {item!r}: expected SEED:ARM with ARM one of {', '.join(ARMS)}")
        pairs.append((int(seed), arm))
    return pairs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[8, 9, 10, 11, 12])
    ap.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS), choices=list(ARMS))
    ap.add_argument("--quick", action="store_true", help="the demo's quick size (192x128, 16 frames, 1000 steps)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--demo-args", default="", metavar="FLAGS", help="`faithfusion demo` schedule flags for every arm")
    ap.add_argument("--prepare", action="store_true", help="only generate the seeds' scenes")
    ap.add_argument("--only", nargs="+", default=None, metavar="SEED:ARM", help="run only these (seed, arm) pairs")
    ap.add_argument("--no-run", action="store_true", help="only aggregate the arms already done")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--result", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.prepare:
        for s in a.seeds:
            prepare_scene(a.out, s, a.quick)
        return
    if a.only is not None:
        for s, arm in parse_only(a.only, a.arms):
            run_arm(a.out, s, arm, a)
        return
    if not a.no_run:
        for s in a.seeds:
            for arm in a.arms:
                run_arm(a.out, s, arm, a)
    from faithfusion.utils.device import resolve_device

    result = {"benchmark": "eig_ablation", "commit": git_commit(), "command": "python " + " ".join(sys.argv),
              "device": device_name(resolve_device(a.device)), "seeds": a.seeds, "bootstrap": a.bootstrap,
              **aggregate(a.out, a.seeds, a.arms, a.bootstrap)}
    path = a.result or a.out / "eig_ablation.json"
    save_json_atomic(path, result)
    for pair, rows in result["paired"].items():
        print(pair, "  ".join(f"{m} m: PSNR {r['psnr']['mean']:+.3f} [{r['psnr']['lo']:+.3f}, {r['psnr']['hi']:+.3f}] "
                              f"LPIPS {r['lpips']['mean']:+.4f} [{r['lpips']['lo']:+.4f}, {r['lpips']['hi']:+.4f}]"
                              for m, r in rows.items()))
    print("complete" if result["complete"] else f"missing: {' '.join(result['missing'])}")


if __name__ == "__main__":
    main()
