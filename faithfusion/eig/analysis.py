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

Writes OUT/eig_vs_error.json and OUT/eig_vs_error.png.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from faithfusion.cameras import Camera, quat_to_rotmat

UNCERTAINTIES = ("eig", "one_minus_alpha", "jitter_std")
ERRORS = ("l1", "dssim")
G_THRESHOLDS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, math.inf)
FRACTIONS = tuple(np.round(np.linspace(0.05, 1.0, 20), 3).tolist())


@dataclass
class AnalysisConfig:
    """EIG against the true error of lane-shifted renders of a run on a SynthStreet scene."""

    run: Path = Path("runs/recon")
    data: Path | None = None
    """SynthStreet scene folder with gt_shifted/ (default: the run's data folder)."""
    out: Path | None = None
    """Output folder (default: RUN/eig_analysis)."""
    shifts: tuple[float, ...] = (3.0, 6.0)
    """Shift magnitudes in metres; both signs are evaluated."""
    frame_stride: int = 1
    """Every k-th timestep (all its cameras)."""
    max_frames: int = 0
    """At most this many frames per shift, evenly spaced (0 = all)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    form: Literal["fisherrf", "faithfusion", "diag"] = "fisherrf"
    jitter_renders: int = 8
    jitter_m: float = 0.02
    jitter_deg: float = 0.2
    samples_per_view: int = 20_000
    calib_views: int = 16
    seed: int = 0
    progress: bool = True


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


def spearman_table(samples: dict[str, np.ndarray]) -> dict:
    from scipy.stats import spearmanr

    out = {}
    for subset, keep in (("all", np.ones_like(samples["covered"], bool)), ("covered", samples["covered"])):
        table = {}
        for u in UNCERTAINTIES:
            for e in ERRORS:
                x, y = samples[u][keep], samples[e][keep]
                rho = spearmanr(x, y)[0] if x.size > 2 and np.ptp(x) > 0 and np.ptp(y) > 0 else float("nan")
                table[f"{u}~{e}"] = float(rho)
        out[subset] = table | {"pixels": int(keep.sum())}
    return out


def analyse(session, scene, data_root: Path, cfg: AnalysisConfig, scale: float) -> dict:
    """The per-shift statistics (no files written)."""
    from faithfusion.eig.session import evenly_spaced, track
    from faithfusion.eval.lane_shift import load_gt_image

    ids = [i for i in range(len(scene.frames)) if scene.frames[i].timestep % max(cfg.frame_stride, 1) == 0]
    ids = evenly_spaced(ids, cfg.max_frames)
    rng = np.random.default_rng(cfg.seed)
    jitter_t = scene.transform.metres_to_scene(cfg.jitter_m)
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
                    **err,
                }
                n_pix = cam.height * cam.width
                pick = rng.choice(n_pix, size=min(cfg.samples_per_view, n_pix), replace=False)
                views.append({k: v.reshape(-1).detach().cpu().double().numpy()[pick] for k, v in maps.items()}
                             | {"psnr_view": np.array([psnr_of(err["se"].cpu().double().numpy())])})
            samples = {k: np.concatenate([v[k] for v in views]) for k in views[0] if k != "psnr_view"}
            samples["covered"] = samples["covered"] > 0.5
            per_shift[f"{d:+.1f}"] = {
                "shift": d, "frames": len(views), "psnr_mean_view": float(np.mean([v["psnr_view"][0] for v in views])),
                "spearman": spearman_table(samples), "retained": retained_curves(samples),
                "g_quantiles": {q: float(np.quantile(samples["g"], float(q))) for q in ("0.1", "0.5", "0.9", "0.99")},
            }
            pooled.setdefault(mag, []).append(samples)
    by_magnitude = {}
    for mag, parts in pooled.items():
        samples = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        by_magnitude[f"{mag:.1f}"] = {"spearman": spearman_table(samples), "retained": retained_curves(samples)}
    return {"per_shift": per_shift, "by_magnitude": by_magnitude}


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def run_analysis(cfg: AnalysisConfig, session=None, loaded=None) -> dict:
    """Load the run (unless given), build the EIG session, analyse every shift, write JSON + PNG."""
    from faithfusion.data.scene import save_json_atomic
    from faithfusion.eig.session import build_session
    from faithfusion.train.recon import to_plain
    from faithfusion.train.run import load_run
    from faithfusion.train.trainer import resolve_device

    if loaded is None:
        loaded = load_run(cfg.run, resolve_device(cfg.device))
    if session is None:
        session = build_session(loaded.trainer, form=cfg.form, calib_views=cfg.calib_views, progress=cfg.progress)
    data_root = Path(cfg.data) if cfg.data is not None else Path(loaded.cfg.data)
    out = Path(cfg.out) if cfg.out is not None else Path(cfg.run) / "eig_analysis"
    result = analyse(session, loaded.scene, data_root, cfg, loaded.cfg.scale)
    result = {"config": to_plain(asdict(cfg)), "calibration": session.calibration.to_dict(),
              "timings": session.timings, **result}
    save_json_atomic(out / "eig_vs_error.json", result)
    plot_analysis(result, out / "eig_vs_error.png")
    return result
