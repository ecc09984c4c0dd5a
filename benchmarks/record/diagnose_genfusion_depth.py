"""Why the GenFusion fixer's depth beats the render on 192 px crops but not on whole frames: a diagnosis.

    # a small CPU reproduction: held-out SynthStreet seed 8, 16 frames, 1000 reconstruction steps (~30 min, 2 cores)
    python -m faithfusion.cli fixer curate --out /tmp/gfdepth/data --synth-seeds 0 --test-seeds 8 --only synth_8 \\
        --synth-frames 16 --synth-width 480 --synth-height 320 --shifts 3 6 --video-windows --video-shifts 3 6 \\
        --kinds video --no-with-eig --steps 1000 --device cpu --no-progress
    python benchmarks/diagnose_genfusion_depth.py --index /tmp/gfdepth/data/index.json --out /tmp/gfdepth/diag.json
        [--model faithfusion/fixers/weights/genfusion] [--shifts 3,6] [--crop 192] [--crops 4] [--threads 2]

For every held-out lane-shift window with |shift| in `--shifts` (the windows `evaluate_video` scores) it
runs the fixer as `evaluate_video` does (whole frames, RGB-D reference) and reports the depth abs rel of
the render and of the fix against ground truth (pixels with gt > 0), then:

- `crops`: `--crops` random 192 px crops per window, as training draws them (the same square in every
  frame; the reference is the whole reference frame resized to the crop, never cropped). On each: abs
  rel of the render, of the fix run ON THE CROP, and of the WHOLE-FRAME fix read on the crop's pixels.
  Crop fix vs whole fix on the same pixels isolates what the crop's context changes (the per-window
  disparity range above all) from which pixels are counted.
- `range`: the window's disparity range as the model sees it (lo, hi = min, max over valid render
  pixels), against the range over pixels with ground truth, with alpha >= 0.5, and that of crops.
- `sky`: render pixels with a (valid) depth but no ground truth (sky, gt = 0): their share, their alpha,
  their depth; and how many valid pixels sit at the window's lo (the farthest render depth).
- `bins`: abs rel of render and fix by ground-truth depth, by image row band, and by render alpha.
- `variants`: the whole-frame fix with other normalisations of the SAME input (inference only, shipped
  weights): min/max (`min_max_range`, the range before `range_quantile`; `--override range_quantile=0`
  gives it for `whole` too), the range from pixels with alpha >= 0.5 only (`alpha_range`), from
  percentiles, and the fix composited back onto the render where the render has no confident surface.
Figures are means over windows (crops: over crops). Writes a JSON with `--out`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
from common import git_commit  # noqa: E402

from faithfusion.fixers import load_fixer  # noqa: E402
from faithfusion.fixers.dataset import VideoFixerDataset, _load_index, is_video_sample, load_map, resize_frames, resize_image, resize_map  # noqa: E402
from faithfusion.fixers.genfusion import (  # noqa: E402
    DisparityRange,
    denormalise_disparity,
    disparity_range,
    normalise_disparity,
    valid_depth,
)

DEPTH_BINS = (0.0, 5.0, 10.0, 20.0, 40.0, 80.0, float("inf"))
ROW_BANDS = 4
ALPHA_BINS = (0.0, 0.5, 0.9, 0.99, 1.01)


def abs_rel_map(pred: Tensor, gt: Tensor) -> Tensor:
    """Per-pixel |pred - gt| / gt where gt > 0, NaN elsewhere."""
    m = gt > 0
    out = torch.full_like(gt, float("nan"))
    out[m] = (pred[m] - gt[m]).abs() / gt[m]
    return out


def nanmean(x: Tensor, mask: Tensor | None = None) -> float | None:
    v = x if mask is None else x[mask]
    v = v[~torch.isnan(v)]
    return float(v.mean()) if v.numel() else None


def run_model(model: Any, deg: Tensor, depth: Tensor, ref: Tensor | None, ref_depth: Tensor | None,
              rng: DisparityRange | None = None) -> Tensor:
    """`fix`'s depth path with the disparity range `rng` (None: the model's own, as `fix` computes it).
    deg [T, H, W, 3], depth [T, H, W], ref [H, W, 3], ref_depth [H, W] -> depth [T, H, W]."""
    if rng is None:
        out = model.fix(deg[None], ref=None if ref is None else ref[None], depth=depth[None],
                        ref_depth=None if ref_depth is None else ref_depth[None])
        return out.depth[0].float()
    min_range = model.config.min_range
    disp, valid = normalise_disparity(depth[None].float(), rng, min_range)
    rdisp = rvalid = None
    if ref_depth is not None:
        rdisp, rvalid = normalise_disparity(ref_depth[None].float(), rng, min_range, clamp=True)
    with torch.no_grad():
        _, d = model(deg[None], disp, valid, None if ref is None else ref[None], rdisp, rvalid)
    return denormalise_disparity(d.float(), rng, min_range)[0]


def range_of(depth: Tensor, mask: Tensor | None = None, q: tuple[float, float] | None = None) -> DisparityRange:
    """lo, hi of the disparity of valid depth `[T, H, W]` within `mask`, as `[1]` (min/max, or quantiles `q`)."""
    valid = valid_depth(depth) & (mask if mask is not None else torch.ones_like(depth, dtype=torch.bool))
    if not bool(valid.any()):
        return disparity_range(depth[None])
    disp = 1.0 / depth[valid].double()
    if q is None:
        lo, hi = disp.min(), disp.max()
    else:
        if disp.numel() > 2_000_000:
            disp = disp[torch.randperm(disp.numel(), generator=torch.Generator().manual_seed(0))[:2_000_000]]
        lo, hi = torch.quantile(disp, q[0]), torch.quantile(disp, q[1])
    return DisparityRange(lo.float().view(1), hi.float().view(1))


def crop_positions(h: int, w: int, c: int, n: int, seed: int) -> list[tuple[int, int]]:
    g = torch.Generator().manual_seed(seed)
    return [(int(torch.randint(0, h - c + 1, (1,), generator=g)), int(torch.randint(0, w - c + 1, (1,), generator=g)))
            for _ in range(n)]


def breakdown(err: dict[str, Tensor], gt: Tensor, alpha: Tensor | None) -> dict[str, Any]:
    """Mean abs rel of each map in `err` by gt depth bin, row band and alpha bin (and the pixel shares)."""
    out: dict[str, Any] = {"depth_bins": [], "row_bands": [], "alpha_bins": []}
    m = gt > 0
    n = max(int(m.sum()), 1)
    for a, b in zip(DEPTH_BINS[:-1], DEPTH_BINS[1:]):
        sel = m & (gt >= a) & (gt < b)
        out["depth_bins"].append({"gt": [a, b], "share": int(sel.sum()) / n, **{k: nanmean(v, sel) for k, v in err.items()}})
    h = gt.shape[-2]
    rows = torch.arange(h)[:, None].expand(gt.shape[-2:])
    for i in range(ROW_BANDS):
        band = (rows >= i * h // ROW_BANDS) & (rows < (i + 1) * h // ROW_BANDS)
        sel = m & band
        out["row_bands"].append({"rows": [i * h // ROW_BANDS, (i + 1) * h // ROW_BANDS], "share": int(sel.sum()) / n,
                                 **{k: nanmean(v, sel) for k, v in err.items()}})
    if alpha is not None:
        for a, b in zip(ALPHA_BINS[:-1], ALPHA_BINS[1:]):
            sel = m & (alpha >= a) & (alpha < b)
            out["alpha_bins"].append({"alpha": [a, b], "share": int(sel.sum()) / n, **{k: nanmean(v, sel) for k, v in err.items()}})
    return out


def merge(records: list[dict[str, Any]]) -> Any:
    """Mean of matching numeric leaves over records (None skipped)."""
    first = records[0]
    if isinstance(first, dict):
        return {k: merge([r[k] for r in records]) for k in first}
    if isinstance(first, list) and first and isinstance(first[0], (dict, list)):
        return [merge([r[i] for r in records]) for i in range(len(first))]
    if isinstance(first, (int, float)) or first is None:
        vals = [r for r in records if r is not None]
        return float(np.mean(vals)) if vals else None
    return first


def alphas_of(index: Path, split: str) -> list[list[Path] | None]:
    """Per video sample of `split` (in `VideoFixerDataset` order): its alpha .npy paths, if curated."""
    base, raw = _load_index(index)
    out = []
    for s in raw:
        if is_video_sample(s) and str(s.get("split", "train")) == split:
            out.append([base / p for p in s["alpha"]] if isinstance(s.get("alpha"), list) else None)
    return out


def diagnose(model: Any, index: Path, split: str, shifts: tuple[float, ...], crop: int, n_crops: int,
             max_windows: int, log: Callable[[str], None]) -> dict[str, Any]:
    data = VideoFixerDataset(index, split, crop=None, frames=None)
    alphas = alphas_of(index, split)
    ids = [i for i, s in enumerate(data.samples) if s.shift is not None and any(abs(abs(s.shift) - d) < 1e-6 for d in shifts)]
    if max_windows > 0:
        ids = ids[:max_windows]
    if not ids:
        raise SystemExit(f"{index}: no {split} window with |shift| in {shifts}")
    windows = []
    for wi, i in enumerate(ids):
        t0 = time.perf_counter()
        item = data[i]
        deg, depth, gt = item["degraded"], item["depth"].float(), item["target_depth"].float()
        ref, ref_depth = (item["reference"], item.get("reference_depth")) if item["has_ref"] else (None, None)
        T, H, W = depth.shape
        alpha = None
        if alphas[i] is not None:
            alpha = resize_frames(torch.stack([load_map(p) for p in alphas[i]]), (H, W), True).float()
        valid = valid_depth(depth)
        gt_ok = gt > 0
        rec: dict[str, Any] = {"scene": data.samples[i].scene, "shift": data.samples[i].shift,
                               "window": str(data.samples[i].degraded[0].parent.name)}

        # --- whole frames, as evaluate_video --------------------------------------------------
        fixed = run_model(model, deg, depth, ref, ref_depth)
        e_render, e_fix = abs_rel_map(depth, gt), abs_rel_map(fixed, gt)
        rec["whole"] = {"render": nanmean(e_render), "fix": nanmean(e_fix)}

        # --- the disparity range and the pixels that set it ---------------------------------------
        rng = disparity_range(depth[None])
        lo, hi = float(rng.lo), float(rng.hi)
        disp = torch.where(valid, 1.0 / depth.clamp(min=1e-6), torch.zeros_like(depth))
        r_gt = range_of(depth, gt_ok)
        sky = valid & ~gt_ok
        rec["range"] = {
            "lo": lo, "hi": hi, "far_m": 1 / lo, "near_m": 1 / hi,
            "gt_pixels": {"far_m": 1 / float(r_gt.lo), "near_m": 1 / float(r_gt.hi)},
            "render_p1_p99_m": [float(1 / torch.quantile(disp[valid][::7].double(), 0.01)),
                                float(1 / torch.quantile(disp[valid][::7].double(), 0.99))],
            "gt_far_m": float(gt[gt_ok].max()), "gt_near_m": float(gt[gt_ok].min()),
            # where the normalised disparity of the pixels with ground truth lies
            "d_of_gt_pixels_p50": float(((disp - lo) / max(hi - lo, 1e-3 * hi))[valid & gt_ok].median()),
        }
        if alpha is not None:
            r_a = range_of(depth, alpha >= 0.5)
            rec["range"]["alpha05_pixels"] = {"far_m": 1 / float(r_a.lo), "near_m": 1 / float(r_a.hi)}
            at_hi = valid & (disp >= hi * 0.999)
            rec["range"]["alpha_of_nearest_pixel"] = float(alpha[at_hi].min()) if bool(at_hi.any()) else None
        nv = max(int(valid.sum()), 1)
        rec["sky"] = {
            "valid_render_share": int(valid.sum()) / valid.numel(),
            "gt_sky_share": int((~gt_ok).sum()) / gt.numel(),
            "valid_render_without_gt_share": int(sky.sum()) / nv,
            "sky_render_depth_median_m": float(depth[sky].median()) if bool(sky.any()) else None,
            "sky_alpha_median": float(alpha[sky].median()) if alpha is not None and bool(sky.any()) else None,
            "gt_pixels_alpha_below_05_share": (int((gt_ok & (alpha < 0.5)).sum()) / max(int(gt_ok.sum()), 1)) if alpha is not None else None,
            "fix_at_far_clamp_share": float((fixed >= (1 / lo) * 0.999)[gt_ok].float().mean()),
            "render_at_far_share": float((depth >= (1 / lo) * 0.999)[gt_ok].float().mean()),
            "gt_beyond_far_share": float((gt[gt_ok] > 1 / lo).float().mean()),
        }
        rec["bins"] = breakdown({"render": e_render, "fix": e_fix}, gt, alpha)

        # --- crops as training draws them -------------------------------------------------------
        crops = []
        if crop and H >= crop and W >= crop:
            for (y, x) in crop_positions(H, W, crop, n_crops, seed=1000 + i):
                win = (slice(None), slice(y, y + crop), slice(x, x + crop))
                c_deg, c_depth, c_gt = deg[win], depth[win], gt[win]
                if not bool((c_gt > 0).any()):
                    continue
                c_ref = resize_image(ref, (crop, crop)) if ref is not None else None  # whole reference, resized
                c_ref_depth = resize_map(ref_depth, (crop, crop)) if ref_depth is not None else None
                c_fixed = run_model(model, c_deg, c_depth, c_ref, c_ref_depth)
                c_rng = disparity_range(c_depth[None])
                crops.append({"yx": [y, x], "render": nanmean(abs_rel_map(c_depth, c_gt)),
                              "fix_on_crop": nanmean(abs_rel_map(c_fixed, c_gt)),
                              "whole_fix_on_crop_pixels": nanmean(e_fix[win]),
                              "far_m": 1 / float(c_rng.lo), "near_m": 1 / float(c_rng.hi),
                              "gt_sky_share": float((c_gt <= 0).float().mean())})
        rec["crops"] = crops

        # --- other normalisations of the same whole-frame input (inference only) ---------------------
        variants: dict[str, Tensor] = {}
        variants["min_max_range"] = run_model(model, deg, depth, ref, ref_depth, disparity_range(depth[None]))
        variants["gt_pixel_range (oracle)"] = run_model(model, deg, depth, ref, ref_depth, r_gt)
        variants["p0.5_p99.5_range"] = run_model(model, deg, depth, ref, ref_depth, range_of(depth, None, (0.005, 0.995)))
        if alpha is not None:
            variants["alpha05_range"] = run_model(model, deg, depth, ref, ref_depth, range_of(depth, alpha >= 0.5))
            variants["alpha05_p1_p99_range"] = run_model(model, deg, depth, ref, ref_depth,
                                                         range_of(depth, alpha >= 0.5, (0.01, 0.99)))
            variants["fix_where_alpha05_else_render"] = torch.where(alpha >= 0.5, fixed, depth)
        rec["variants"] = {k: nanmean(abs_rel_map(v, gt)) for k, v in variants.items()}
        windows.append(rec)
        log(f"[{wi + 1}/{len(ids)}] {rec['window']}: render {rec['whole']['render']:.3f} fix {rec['whole']['fix']:.3f}; "
            f"range {1 / hi:.2f}-{1 / lo:.1f} m; crops "
            + ", ".join(f"{c['render']:.3f}/{c['fix_on_crop']:.3f}/{c['whole_fix_on_crop_pixels']:.3f}" for c in crops)
            + "; " + ", ".join(f"{k} {v:.3f}" for k, v in rec["variants"].items()) + f" ({time.perf_counter() - t0:.0f} s)")
    all_crops = [c for w in windows for c in w["crops"]]
    summary = {
        "windows": len(windows),
        "whole": merge([w["whole"] for w in windows]),
        "crops": merge([{k: v for k, v in c.items() if k != "yx"} for c in all_crops]) if all_crops else None,
        "n_crops": len(all_crops),
        "range": merge([w["range"] for w in windows]),
        "sky": merge([w["sky"] for w in windows]),
        "bins": merge([w["bins"] for w in windows]),
        "variants": merge([w["variants"] for w in windows]),
    }
    return {"summary": summary, "per_window": windows}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", required=True, type=Path)
    p.add_argument("--model", default="faithfusion/fixers/weights/genfusion")
    p.add_argument("--split", default="test")
    p.add_argument("--shifts", default="3,6")
    p.add_argument("--crop", type=int, default=192)
    p.add_argument("--crops", type=int, default=4, help="random crops per window")
    p.add_argument("--max-windows", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--override", action="append", default=[], help="config override KEY=JSON for load_fixer (repeatable)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    overrides = {k: json.loads(v) for k, v in (o.split("=", 1) for o in a.override)}
    model = load_fixer(a.model, **overrides).float().eval()
    shifts = tuple(float(s) for s in a.shifts.split(",") if s)
    res = diagnose(model, a.index, a.split, shifts, a.crop, a.crops, a.max_windows, lambda s: print(s, flush=True))
    res.update(model=a.model, overrides=overrides, index=str(a.index), commit=git_commit(),
               command="python benchmarks/diagnose_genfusion_depth.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(json.dumps(res["summary"], indent=1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
