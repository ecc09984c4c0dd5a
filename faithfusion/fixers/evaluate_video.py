"""Held-out figures of a video fixer (EIGent, GenFusion) on the video windows of a curated index, beside a
per-frame Difix: quality against ground truth, temporal consistency, faithfulness, and depth.

    faithfusion fixer evaluate-video --index I --model DIR [--difix DIR] [--shifts 3 6] [--out F]

Per window and then averaged: PSNR / LPIPS against the target frames; the warp error between consecutive
frames (eval/temporal.py; ground-truth depth and the recorded cameras), for the targets too (the floor the
data allows); the mean change from the render in the lowest-EIG half of the pixels (faithfulness); and for
fixers that return depth (GenFusion) the abs rel of their depth and of the rendered depth against ground truth.
Windows are the lane-shift ramps whose final |shift| is in `shifts` (None: every window with cameras); the
means are given over all of them and, under "by_shift", for each final |shift| apart. Everything is computed
on `device`, the warps included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from faithfusion.eval.metrics import psnr
from faithfusion.eval.temporal import abs_rel, low_eig_change, warp_error
from faithfusion.fixers.dataset import VideoFixerDataset


def _outputs(fixer: Any, item: dict, difix: Any | None, device: str | torch.device) -> tuple[dict[str, Tensor], Tensor | None]:
    """{name: frames [T, H, W, 3]} for the render, the fixer and the per-frame Difix; the fixer's depth or None."""
    deg = item["degraded"].to(device)  # [T, H, W, 3]
    ref = item["reference"][None].to(device) if item["has_ref"] else None  # [1, H, W, 3]
    eig = item["eig"][None].to(device) if "eig" in item else None  # [1, T, H, W]
    depth = item["depth"][None].to(device) if "depth" in item else None
    ref_depth = item["reference_depth"][None].to(device) if ref is not None and "reference_depth" in item else None
    res = fixer.fix(deg[None], ref=ref, eig=eig, depth=depth, ref_depth=ref_depth)  # RGB-D reference, as trained
    outs = {"render": deg, "fixer": res.images[0].float().clamp(0, 1)}
    if difix is not None:
        refs = None if ref is None else ref.expand(deg.shape[0], -1, -1, -1)  # [T, H, W, 3]
        eig_frames = None if eig is None else eig[0][:, None]  # [T, 1, H, W]: used by a Difix conditioned on EIG
        outs["difix"] = difix.fix(deg[:, None], ref=refs, eig=eig_frames).images[:, 0].float().clamp(0, 1)
    return outs, (None if res.depth is None else res.depth[0].float())


@torch.no_grad()
def evaluate_video_fixer_on_index(fixer: Any, index: str | Path, split: str = "test", shifts: tuple[float, ...] | None = (3.0,),
                                  difix: Any | None = None, device: str | torch.device = "cpu",
                                  lpips_weights: str | Path | None = None, max_samples: int = 0,
                                  warp: bool = True, log: Any = None) -> dict[str, Any]:
    """Mean figures over the held-out windows; `warp=False` skips the warp errors (CPU-heavy: the
    depth and image figures alone), `log` (a print-like callable) reports each window."""
    from faithfusion.fixers.evaluate import _lpips_net

    data = VideoFixerDataset(index, split, crop=None, frames=None)
    ids = [i for i, s in enumerate(data.samples) if s.cameras is not None
           and (shifts is None or (s.shift is not None and any(abs(abs(s.shift) - d) < 1e-6 for d in shifts)))]
    if max_samples > 0:
        ids = ids[:max_samples]
    if not ids:
        raise ValueError(f"{index}: no {split} video window with recorded cameras and |shift| in {shifts}")
    net = _lpips_net(lpips_weights)
    net = net.to(device) if net is not None else None
    fixer = fixer.to(device).eval()
    difix = difix.to(device).eval() if difix is not None else None
    by_shift: dict[str, dict[str, list[float]]] = {}  # "3.0" -> {key: [one value per window]}

    def add(key: str, value: float) -> None:  # into the current window's shift
        by_shift.setdefault(shift_key, {}).setdefault(key, []).append(value)

    for n, i in enumerate(ids):
        shift = data.samples[i].shift
        shift_key = "none" if shift is None else str(abs(float(shift)))

        if log is not None:
            log(f"window {n + 1}/{len(ids)}")
        item = data[i]
        tgt = item["target"].to(device)
        outs, fixed_depth = _outputs(fixer, item, difix, device)
        gt_depth = item["target_depth"].to(device) if "target_depth" in item else None  # [T, H, W]
        K, c2w = item["K"].to(device), item["camtoworld"].to(device)  # on the device: the warp is the slow part
        eig = item["eig"].to(device) if "eig" in item else None
        for name, frames in outs.items():
            add(f"{name}_psnr", float(psnr(frames, tgt)))
            if net is not None:
                add(f"{name}_lpips", float(net(frames, tgt).mean()))
            if gt_depth is not None and warp:
                add(f"{name}_warp_error", warp_error(frames, gt_depth, K, c2w)["warp_error"])
            if name != "render" and eig is not None:
                add(f"{name}_low_eig_change", low_eig_change(frames, outs["render"], eig))
        if gt_depth is not None:
            if warp:
                add("target_warp_error", warp_error(tgt, gt_depth, K, c2w)["warp_error"])
            if "depth" in item:
                add("render_depth_abs_rel", abs_rel(item["depth"].to(device), gt_depth))
            if fixed_depth is not None:
                add("fixer_depth_abs_rel", abs_rel(fixed_depth, gt_depth))
    out: dict[str, Any] = {"split": split, "shifts": list(shifts) if shifts else None, "windows": len(ids), "lpips_net": net.name,
                           "frames_per_window": int(data[ids[0]]["degraded"].shape[0])}
    keys = dict.fromkeys(k for r in by_shift.values() for k in r)  # pooled: every window, whatever its shift
    out.update({k: float(np.mean([v for r in by_shift.values() for v in r.get(k, [])])) for k in keys})
    out["by_shift"] = {d: {"windows": len(next(iter(r.values()))), **{k: float(np.mean(v)) for k, v in r.items()}}
                       for d, r in sorted(by_shift.items(), key=lambda kv: float("inf") if kv[0] == "none" else float(kv[0]))}
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """["key=JSON", ...] -> {key: value}; a clear error for anything else."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--override {item!r}: expected KEY=JSON, e.g. range_quantile=0")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError as e:
            raise SystemExit(f"--override {item!r}: the value is not JSON ({e})") from None
    return out
