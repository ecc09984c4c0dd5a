"""Does EIG predict where a lane-shifted render is wrong? SynthStreet has the ground truth to check.

For each shift (default +-3 m and +-6 m) and each evaluated frame: render the shifted camera, compute
its EIG map (calibrated g) and the per-pixel error against `gt_shifted/{d:+.1f}m/images/` (L1 averaged
over channels, and 1 - SSIM map). Pixels are subsampled per view and pooled per shift. Reported:

(a) FaithFusion's Figure 3: the PSNR of the retained pixels when only pixels with EIG below a threshold
    are kept, as a function of the threshold (fixed thresholds on g, and the retained fraction). A good
    uncertainty gives a curve that falls as more high-EIG pixels are admitted. The same curve for the
    naive uncertainties and for the error itself (the best any ranking can do) is drawn beside it.
(b) Spearman's rank correlation between per-pixel uncertainty and per-pixel error, for EIG and for two
    naive baselines: 1 - alpha, and the per-pixel std of renders under small pose jitter (default 8
    renders, +-2 cm, +-0.2 deg); over all pixels and over covered pixels only.

`variants` (e.g. "fisherrf", "faithfusion+log", "fisherrf+log+floor=0.1+box=5") evaluates other EIG
definitions on the same pixels from one H_view per camera (`variants.parse_variant` has the grammar); each gets
its own calibration on the training views, its Spearman table and its retained-pixel curves under
result["variants"][name], next to the same pixels' baselines. `render_grad` (the image-gradient magnitude
of the render) is reported beside the naive baselines, never as an EIG.

`faithfusion eig-analysis` (faithfusion/commands/eig_analysis.py) writes OUT/eig_vs_error.json and OUT/eig_vs_error.png.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from faithfusion.cameras import Camera, quat_to_rotmat
from faithfusion.eig.combined import image_gradient
from faithfusion.eig.variants import Variant, VariantMaps, parse_variant  # noqa: F401  (they live in variants.py)
from faithfusion.utils.atomic import atomic_write

UNCERTAINTIES = ("eig", "one_minus_alpha", "jitter_std")
ERRORS = ("l1", "dssim")
G_THRESHOLDS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, math.inf)
FRACTIONS = tuple(np.round(np.linspace(0.05, 1.0, 20), 3).tolist())


class AnalysisSettings(Protocol):
    """What `analyse` reads of its settings (the `faithfusion eig-analysis` config has them all)."""

    shifts: tuple[float, ...]  # magnitudes in metres; both signs are evaluated
    frame_stride: int  # every k-th timestep (all its cameras)
    max_frames: int  # at most this many frames per shift, evenly spaced (0 = all)
    jitter_renders: int
    jitter_m: float
    jitter_deg: float
    samples_per_view: int
    calib_views: int
    seed: int
    progress: bool
    variants: tuple[str, ...]


def jitter_camera(camera: Camera, translation: float, degrees: float, generator: torch.Generator) -> Camera:
    """The camera moved by a uniform +-`translation` (scene units) per axis and turned by +-`degrees` per axis."""
    c2w = camera.camtoworld.clone()
    t = (torch.rand(3, generator=generator, dtype=torch.float64) * 2 - 1) * translation
    aa = (torch.rand(3, generator=generator, dtype=torch.float64) * 2 - 1) * math.radians(degrees)
    angle = float(aa.norm())
    axis = aa / max(angle, 1e-12)
    q = torch.cat([torch.tensor([math.cos(angle / 2)], dtype=torch.float64), axis * math.sin(angle / 2)])
    R = quat_to_rotmat(q).to(c2w)
    c2w[:3, :3] = c2w[:3, :3] @ R
    c2w[:3, 3] = c2w[:3, 3] + t.to(c2w)
    return camera.with_camtoworld(c2w)


def jitter_std(session, camera: Camera, n: int, translation: float, degrees: float, seed: int) -> Tensor:
    """Per-pixel std over `n` jittered renders, averaged over channels `[H, W]`."""
    g = torch.Generator().manual_seed(seed)
    renders = torch.stack([session.render(jitter_camera(camera, translation, degrees, g))[0] for _ in range(n)])
    return renders.std(0).mean(-1)


def view_errors(pred: Tensor, gt: Tensor) -> dict[str, Tensor]:
    """Per-pixel L1 (channel mean), 1 - SSIM (channel mean) and squared error (channel mean), `[H, W]` each."""
    from faithfusion.eval.metrics import ssim_map

    return {
        "l1": (pred - gt).abs().mean(-1),
        "dssim": 1.0 - ssim_map(pred[None], gt[None]).mean(-1)[0],
        "se": ((pred - gt) ** 2).mean(-1),
    }


def psnr_of(se: np.ndarray) -> float:
    return float(-10.0 * np.log10(max(float(se.mean()), 1e-12))) if se.size else float("nan")


def retained_curves(samples: dict[str, np.ndarray]) -> dict:
    """Retained-pixel PSNR by threshold on g and by retained fraction, for each uncertainty and the error itself."""
    se = samples["se"]
    by_threshold = []
    for t in G_THRESHOLDS:
        keep = samples["g"] <= t
        by_threshold.append({"g_max": None if math.isinf(t) else t, "fraction": float(keep.mean()), "psnr": psnr_of(se[keep])})
    by_fraction = {}
    for name in (*UNCERTAINTIES, "error"):
        u = samples["l1"] if name == "error" else samples[name]
        order = np.argsort(u, kind="stable")
        rows = []
        for f in FRACTIONS:
            k = max(1, int(round(f * len(order))))
            rows.append({"fraction": f, "threshold": float(u[order[k - 1]]), "psnr": psnr_of(se[order[:k]])})
        by_fraction[name] = rows
    return {"by_g_threshold": by_threshold, "by_fraction": by_fraction}


def spearman_table(samples: dict[str, np.ndarray], uncertainties: tuple[str, ...] = UNCERTAINTIES) -> dict:
    from scipy.stats import spearmanr

    out = {}
    for subset, keep in (("all", np.ones_like(samples["covered"], bool)), ("covered", samples["covered"])):
        table = {}
        for u in uncertainties:
            for e in ERRORS:
                x, y = samples[u][keep], samples[e][keep]
                rho = spearmanr(x, y)[0] if x.size > 2 and np.ptp(x) > 0 and np.ptp(y) > 0 else float("nan")
                table[f"{u}~{e}"] = float(rho)
        out[subset] = table | {"pixels": int(keep.sum())}
    return out


render_grad = image_gradient
"""Image-gradient magnitude of a render `[H, W, 3]` -> `[H, W]` (`combined.image_gradient`)."""


def monotone(rows: list[dict], key: str = "fraction", tol: float = 0.0) -> dict:
    """Does the retained PSNR fall (within `tol` dB) at every step that admits more pixels? Also the first
    threshold index from which it does."""
    pts = [r for r in rows if r[key] > 0 and np.isfinite(r["psnr"])]
    ups = [k for k in range(1, len(pts)) if pts[k][key] > pts[k - 1][key] and pts[k]["psnr"] > pts[k - 1]["psnr"] + tol]
    return {"monotone": not ups, "rises": len(ups), "monotone_from": (ups[-1] if ups else 0), "points": len(pts)}


def variant_summary(samples: dict[str, np.ndarray], name: str) -> dict:
    """Spearman (vs L1 and 1-SSIM, all / covered) and retained-pixel curves of one variant's pooled samples."""
    s = samples | {"eig": samples[f"eig:{name}"], "g": samples[f"g:{name}"]}
    sp = spearman_table(s, ("eig",))
    ret = retained_curves({k: s[k] for k in ("se", "g", "l1", "covered", "eig", *UNCERTAINTIES[1:])})
    by_t = ret["by_g_threshold"]
    by_f = ret["by_fraction"]["eig"]
    return {"spearman": sp, "by_g_threshold": by_t, "by_fraction": by_f,
            "monotone_g": monotone(by_t), "monotone_fraction": monotone(by_f),
            "g_quantiles": {q: float(np.quantile(s["g"], float(q))) for q in ("0.1", "0.5", "0.9", "0.99")}}


def analyse(session, scene, data_root: Path, cfg: AnalysisSettings, scale: float) -> dict:
    """The per-shift statistics (no files written)."""
    from faithfusion.eig.session import evenly_spaced, track
    from faithfusion.eval.lane_shift import load_gt_image

    ids = [i for i in range(len(scene.frames)) if scene.frames[i].timestep % max(cfg.frame_stride, 1) == 0]
    ids = evenly_spaced(ids, cfg.max_frames)
    rng = np.random.default_rng(cfg.seed)
    jitter_t = scene.transform.metres_to_scene(cfg.jitter_m)
    variants = [parse_variant(v) for v in cfg.variants]
    vmaps = None
    if variants:
        from faithfusion.eig.session import evenly_spaced as spaced

        calib = [v.camera for v in spaced(list(session.trainer.real.views), cfg.calib_views)]
        vmaps = VariantMaps(session, variants, calib)
    per_shift: dict[str, dict] = {}
    pooled: dict[float, list[dict[str, np.ndarray]]] = {}
    for mag in cfg.shifts:
        for d in (mag, -mag):
            views = []
            for i in track(ids, f"shift {d:+.1f} m", cfg.progress):
                frame = scene.frames[i]
                cam = scene.shifted_camera(i, d, scale).to(session.trainer.device)
                gt = load_gt_image(data_root, d, frame.timestep, frame.cam_name, (cam.height, cam.width)).to(session.trainer.device)
                pred, alpha = session.render(cam)
                m, g = session.eig(cam)
                err = view_errors(pred, gt)
                maps = {
                    "g": g, "eig": m.eig, "one_minus_alpha": 1.0 - alpha, "covered": m.covered,
                    "jitter_std": jitter_std(session, cam, cfg.jitter_renders, jitter_t, cfg.jitter_deg, cfg.seed + i),
                    "render_grad": render_grad(pred),
                    **err,
                }
                if vmaps is not None:
                    for name, (ve, vg) in vmaps(cam).items():
                        maps[f"eig:{name}"], maps[f"g:{name}"] = ve, vg
                n_pix = cam.height * cam.width
                pick = rng.choice(n_pix, size=min(cfg.samples_per_view, n_pix), replace=False)
                views.append({k: v.reshape(-1).detach().cpu().double().numpy()[pick] for k, v in maps.items()}
                             | {"psnr_view": np.array([psnr_of(err["se"].cpu().double().numpy())])})
            samples = {k: np.concatenate([v[k] for v in views]) for k in views[0] if k != "psnr_view"}
            samples["covered"] = samples["covered"] > 0.5
            per_shift[f"{d:+.1f}"] = {
                "shift": d, "frames": len(views), "psnr_mean_view": float(np.mean([v["psnr_view"][0] for v in views])),
                "spearman": spearman_table(samples, (*UNCERTAINTIES, "render_grad")), "retained": retained_curves(samples),
                "g_quantiles": {q: float(np.quantile(samples["g"], float(q))) for q in ("0.1", "0.5", "0.9", "0.99")},
            }
            if variants:
                per_shift[f"{d:+.1f}"]["variants"] = {v.name: variant_summary(samples, v.name) for v in variants}
            pooled.setdefault(mag, []).append(samples)
    by_magnitude = {}
    for mag, parts in pooled.items():
        samples = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        by_magnitude[f"{mag:.1f}"] = {"spearman": spearman_table(samples, (*UNCERTAINTIES, "render_grad")),
                                      "retained": retained_curves(samples)}
        if variants:
            by_magnitude[f"{mag:.1f}"]["variants"] = {v.name: variant_summary(samples, v.name) for v in variants}
    out = {"per_shift": per_shift, "by_magnitude": by_magnitude}
    if vmaps is not None:
        out["variant_calibrations"] = {k: c.to_dict() for k, c in vmaps.calibrations.items()}
        out["variant_group_scales"] = {f"{k}": v for k, v in vmaps.scales.items()}
    return out


def plot_analysis(result: dict, path: Path) -> None:
    """Retained PSNR vs retained fraction (all uncertainties) and vs the g threshold, one row per magnitude."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mags = list(result["by_magnitude"])
    fig, axes = plt.subplots(len(mags), 2, figsize=(11, 3.6 * len(mags)), squeeze=False)
    for row, mag in zip(axes, mags):
        r = result["by_magnitude"][mag]["retained"]
        for name, rows in r["by_fraction"].items():
            row[0].plot([x["fraction"] for x in rows], [x["psnr"] for x in rows], marker=".", label=name,
                        linestyle="--" if name == "error" else "-")
        row[0].set_xlabel("retained fraction of pixels (lowest uncertainty first)")
        row[0].set_ylabel("PSNR of retained pixels (dB)")
        row[0].set_title(f"|shift| = {mag} m")
        row[0].legend(fontsize=8)
        pts = [x for x in r["by_g_threshold"] if x["fraction"] > 0]
        labels = ["inf" if x["g_max"] is None else f"{x['g_max']:g}" for x in pts]
        row[1].plot(range(len(pts)), [x["psnr"] for x in pts], marker="o")
        for k, x in enumerate(pts):
            row[1].annotate(f"{100 * x['fraction']:.0f}%", (k, x["psnr"]), fontsize=7, textcoords="offset points", xytext=(0, 5))
        row[1].set_xticks(range(len(pts)), labels)
        row[1].set_xlabel("EIG threshold: keep pixels with calibrated g <= t")
        row[1].set_ylabel("PSNR of retained pixels (dB)")
        for ax in row:
            ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, save=lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
