"""`faithfusion eig`: per-pixel EIG maps of a trained run's frames, from a lane shifted by --shift metres.

OUT/config.yaml            the resolved configuration
OUT/calibration.json       the calibration statistics (reused by fusion runs: `Calibration.load`)
OUT/{frame:04d}_{cam}.png          the RGB render (sky composited)
OUT/{frame:04d}_{cam}_eig.npy      raw EIG [H, W] float32 (uncovered pixels = the view's max)
OUT/{frame:04d}_{cam}_eig_cal.npy  calibrated g = log2(1 + EIG / EIG_ref) [H, W] float32
OUT/{frame:04d}_{cam}_alpha.npy    accumulated opacity [H, W] (covered = alpha >= alpha_min)
OUT/{frame:04d}_{cam}_weight.npy   the per-pixel loss weight of a repaired view [H, W] in [w_min, 1]
OUT/{frame:04d}_{cam}_mask.png     the binary repaint mask (white = repaint)
OUT/{frame:04d}_{cam}_eig.png, _eig_cal.png   heatmaps (inferno) of log2(1 + EIG / EIG_ref) and g
OUT/summary.json           per frame: mean g, masked fraction, seconds; H_train and calibration timings
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

G_DISPLAY_MAX = 4.0  # heatmaps of g span [0, 4]: 4 = sixteen times the reference EIG


@dataclass
class EigConfig:
    """Per-pixel expected information gain of a run's frames (optionally lane-shifted), calibrated on its training views."""

    run: Path = Path("runs/recon")
    """Trained run folder (config.yaml + ckpt/)."""
    out: Path = Path("runs/recon/eig")
    """Output folder."""
    shift: float = 0.0
    """Lateral shift of the ego in metres, positive = left."""
    frames: tuple[int, ...] = ()
    """Frame indices to map; empty = the run's held-out (test) frames."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    form: Literal["fisherrf", "faithfusion", "pixel"] = "fisherrf"
    """Per-pixel form: the paper's sum w I (FisherRF) or sum w I / hit count (FaithFusion), or pixel EIG
    1/2 log(1 + Var_p / sigma^2) (eig/pixel.py). Research forms (diag, pvar): eig-analysis --variants."""
    save_heatmaps: bool = True
    lam: float = 1e-6
    """FisherRF's lambda in H_view / (H_train + lambda)."""
    alpha_min: float = 0.1
    """Pixels with less accumulated opacity count as uncovered (maximal EIG)."""
    calib_views: int = 16
    """Training views whose own EIG maps calibrate the scale (0 = all)."""
    exclude_sky: bool = True
    """Leave sky-mask pixels out of H_train."""
    max_pairs: int = 0
    """Pixel-Gaussian pairs per chunk (0 = 2^23 on CUDA, 2^18 on CPU)."""
    compile: bool = False
    """Run the per-chunk pair loop through torch.compile (fused kernels on the GPU; the first view compiles)."""
    overwrite: bool = False
    progress: bool = True


def frame_ids(cfg: EigConfig, scene) -> list[int]:
    if cfg.frames:
        bad = [i for i in cfg.frames if not 0 <= i < len(scene.frames)]
        if bad:
            raise ValueError(f"frames {bad} out of range: the scene has {len(scene.frames)} frames")
        return list(cfg.frames)
    return list(scene.test_ids) or list(range(len(scene.frames)))


def run_eig(cfg: EigConfig) -> dict:
    """Compute H_train, calibrate, map every chosen frame; returns the summary written to OUT/summary.json."""
    from faithfusion.utils.jsonio import save_json_atomic
    from faithfusion.eig.heatmap import save_heatmap, save_png
    from faithfusion.eig.session import build_session, track
    from faithfusion.utils.jsonio import to_plain
    from faithfusion.train.run import load_run
    from faithfusion.utils.device import resolve_device

    import yaml

    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise FileExistsError(f"{out}: output folder is not empty; pass --overwrite to replace its files")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(to_plain(asdict(cfg)), sort_keys=False))

    device = resolve_device(cfg.device)
    loaded = load_run(cfg.run, device)
    scene, trainer = loaded.scene, loaded.trainer
    ids = frame_ids(cfg, scene)
    session = build_session(
        trainer, form=cfg.form, lam=cfg.lam, alpha_min=cfg.alpha_min, calib_views=cfg.calib_views,
        exclude_sky=cfg.exclude_sky, max_pairs=cfg.max_pairs or None, compiled=cfg.compile, progress=cfg.progress,
    )
    cal = session.calibration
    cal.save(out / "calibration.json")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for i in track(ids, f"EIG maps (shift {cfg.shift:+.1f} m)", cfg.progress):
        cam = scene.shifted_camera(i, cfg.shift, loaded.cfg.scale).to(device)
        stem = f"{i:04d}_{scene.frames[i].cam_name}"
        sync()
        t0 = time.perf_counter()
        m, g = session.eig(cam)
        sync()
        seconds = time.perf_counter() - t0
        rgb, _ = session.render(cam)
        weight = cal.weight(g, m.covered)
        mask = cal.mask(g, m.covered)
        save_png(out / f"{stem}.png", rgb)
        for name, arr in (("eig", m.eig), ("eig_cal", g), ("alpha", m.alpha), ("weight", weight)):
            np.save(out / f"{stem}_{name}.npy", arr.detach().float().cpu().numpy())
        save_png(out / f"{stem}_mask.png", mask.float())
        if cfg.save_heatmaps:
            save_heatmap(out / f"{stem}_eig.png", torch.log2(1.0 + cal.ratio(m.eig)), 0.0, None)
            save_heatmap(out / f"{stem}_eig_cal.png", g, 0.0, G_DISPLAY_MAX)
        rows.append({
            "frame": i, "cam": scene.frames[i].cam_name, "seconds": seconds,
            "g_mean": float(g.mean()), "g_median": float(g.median()), "mask_fraction": float(mask.float().mean()),
            "weight_mean": float(weight.mean()), "covered_fraction": float(m.covered.float().mean()),
        })
    summary = {
        "run": str(cfg.run), "shift": cfg.shift, "form": cfg.form, "device": str(device),
        "num_gaussians": len(trainer.model), "calibration": cal.to_dict(), "timings": session.timings, "frames": rows,
    }
    save_json_atomic(out / "summary.json", summary)
    print(f"wrote EIG maps of {len(rows)} frames to {out}")
    return summary
