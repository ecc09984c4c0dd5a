"""Per-view statistics of uncertainty maps against the truth, for one run on its SynthStreet scene.

For every evaluated frame of every shift (both signs of each magnitude) the lane-shifted view is rendered
and each map is computed (higher = more likely wrong):

    <form>             the raw EIG of each form the session accepts (`fisherrf`, `faithfusion`, ... by name;
                       the calibration g is monotone in it, so every rank measure is the same on g)
    combined           (when asked, with `pixel`) the per-view rank mean of the `pixel` map and `render_grad`
                       over all the view's pixels (eig/combined.py), from the same two maps as their rows
    one_minus_alpha    1 - accumulated opacity
    jitter_std         per-pixel std of renders under small pose jitter (analysis.jitter_std)
    render_grad        the image-gradient magnitude of the render
    unconstrained      the blend-weight share of Gaussians training never constrained (eig/unconstrained.py)

The evaluated pixels are the view's non-sky pixels (SynthStreet's `gt_shifted/.../sky_masks`; all pixels
without sky masks or with `exclude_sky=False`), subsampled to `samples_per_view`. Per map and view
(eval/uncertainty.py): AUROC and AP for the `unobserved` / `disoccluded` masks where the scene has them,
Spearman with the per-pixel L1 and with 1 - SSIM, rank partial Spearman with L1 given `render_grad`,
AUSE for L1, the retained MSE at each fraction of `analysis.FRACTIONS` (and the same for the oracle order by
L1, map "error") and its trend: the Spearman correlation of the retained fraction with the retained MSE (1: the
view's retained-pixel PSNR falls at every step as pixels are admitted, -1: it rises at every step).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

BASELINES = ("one_minus_alpha", "jitter_std", "render_grad", "unconstrained")
CONTROL = "render_grad"


class ViewStatsSettings(Protocol):
    """What `scene_view_stats` reads of its settings (the `faithfusion eig-analysis` config has them all)."""

    shifts: tuple[float, ...]
    frame_stride: int
    max_frames: int
    forms: tuple[str, ...]
    jitter_renders: int
    jitter_m: float
    jitter_deg: float
    samples_per_view: int
    calib_views: int
    seed: int
    progress: bool
    unconstrained_quantile: float
    exclude_sky: bool


def measure_names(with_masks: tuple[str, ...]) -> list[str]:
    names = [f"{m}_{k}" for k in with_masks for m in ("auroc", "ap")]
    return names + ["spearman_l1", "spearman_dssim", "partial_spearman_l1", "ause_l1", "retained_trend"]


def map_measures(u: np.ndarray, l1: np.ndarray, dssim: np.ndarray, se: np.ndarray, control: np.ndarray,
                 masks: dict[str, np.ndarray], fractions) -> tuple[dict[str, float], list[float]]:
    """Every measure of one map on one view's sampled pixels, and its retained MSE curve."""
    from faithfusion.eval.uncertainty import ause, auroc, average_precision, partial_spearman, retained_mse, spearman

    out: dict[str, float] = {}
    for kind, y in masks.items():
        out[f"auroc_{kind}"], out[f"ap_{kind}"] = auroc(u, y), average_precision(u, y)
    curve = retained_mse(u, se, fractions)
    out |= {"spearman_l1": spearman(u, l1), "spearman_dssim": spearman(u, dssim),
            "partial_spearman_l1": partial_spearman(u, l1, control), "ause_l1": ause(u, l1),
            "retained_trend": spearman(fractions, curve)}
    return out, curve.tolist()


def _plain(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _sky_mask(root: Path, d: float, timestep: int, cam: str, size: tuple[int, int]) -> Tensor | None:
    """The shifted view's sky mask `[H, W]` bool, or None where the scene has none."""
    from faithfusion.eval.gt_masks import gt_mask_path, load_gt_mask

    if not gt_mask_path(root, d, "sky_masks", timestep, cam).is_file():
        return None
    return load_gt_mask(root, d, "sky_masks", timestep, cam, size)


def mask_status(root: Path, shifts: list[float]) -> dict[str, str]:
    """{kind: "present" or the reason its measures are skipped}."""
    from faithfusion.eval.gt_masks import MASK_KINDS, has_gt_masks

    out = {}
    for kind in MASK_KINDS:
        missing = [f"{d:+.1f}" for d in shifts if not has_gt_masks(root, d, kind)]
        out[kind] = "present" if not missing else (
            f"skipped: {root}/gt_shifted/<shift>/{kind}/ has no masks for shifts {', '.join(missing)}")
    return out


def check_forms(forms: tuple[str, ...]) -> None:
    """`combined` is made from the `pixel` map: it needs `pixel` among the forms."""
    from faithfusion.eig.combined import COMBINED, INPUT_FORM

    if COMBINED in forms and INPUT_FORM not in forms:
        raise ValueError(f"--forms {' '.join(forms)}: {COMBINED!r} is made from the {INPUT_FORM!r} map; "
                         f"add {INPUT_FORM!r} to --forms")


def build_sessions(trainer, forms: tuple[str, ...], calib_views: int, progress: bool) -> dict:
    """One EIG session per form (`combined` needs none: it is made from the `pixel` map and the render), all on one
    H_train (computed once)."""
    from faithfusion.eig.combined import COMBINED
    from faithfusion.eig.session import build_session

    check_forms(forms)
    forms = tuple(f for f in forms if f != COMBINED)
    first = build_session(trainer, form=forms[0], calib_views=calib_views, progress=progress)
    sessions = {forms[0]: first}
    for f in forms[1:]:
        sessions[f] = build_session(trainer, acc=first.acc, form=f, calib_views=calib_views, progress=False)
    return sessions


def scene_view_stats(loaded, data_root: Path, cfg: ViewStatsSettings, name: str) -> dict:
    """Per-view statistics of one loaded run (`train.run.load_run`) on its SynthStreet folder `data_root`."""
    from faithfusion.eig.analysis import FRACTIONS, jitter_std, psnr_of, render_grad, view_errors
    from faithfusion.eig.session import evenly_spaced, track
    from faithfusion.eig.unconstrained import UnconstrainedGaussians
    from faithfusion.eval.lane_shift import load_gt_image
    from faithfusion.eval.gt_masks import load_gt_mask
    from faithfusion.eval.uncertainty import retained_mse

    from faithfusion.eig.combined import COMBINED, INPUT_FORM, combined_map

    scene, scale = loaded.scene, loaded.cfg.scale
    sessions = build_sessions(loaded.trainer, tuple(cfg.forms), cfg.calib_views, cfg.progress)
    base = next(iter(sessions.values()))
    unc = UnconstrainedGaussians.from_h_train(base.acc.H, cfg.unconstrained_quantile)
    shifts = [d for mag in cfg.shifts for d in (mag, -mag)]
    status = mask_status(data_root, shifts)
    kinds = tuple(k for k, s in status.items() if s == "present")
    ids = [i for i in range(len(scene.frames)) if scene.frames[i].timestep % max(cfg.frame_stride, 1) == 0]
    ids = evenly_spaced(ids, cfg.max_frames)
    rng = np.random.default_rng(cfg.seed)
    jitter_t = scene.transform.metres_to_scene(cfg.jitter_m)
    device = loaded.trainer.device
    views = []
    for d in shifts:
        for i in track(ids, f"{name}: shift {d:+.1f} m", cfg.progress):
            frame = scene.frames[i]
            cam = scene.shifted_camera(i, d, scale).to(device)
            size = (cam.height, cam.width)
            gt = load_gt_image(data_root, d, frame.timestep, frame.cam_name, size).to(device)
            pred, alpha = base.render(cam)
            maps: dict[str, Tensor] = {f: s.eig(cam)[0].eig for f, s in sessions.items()}
            grad = render_grad(pred)  # [H, W]
            if COMBINED in cfg.forms:
                maps[COMBINED] = combined_map(maps[INPUT_FORM], grad)
            maps = {f: maps[f] for f in cfg.forms}  # the order of --forms
            maps |= {"one_minus_alpha": 1.0 - alpha,
                     "jitter_std": jitter_std(base, cam, cfg.jitter_renders, jitter_t, cfg.jitter_deg, cfg.seed + i),
                     "render_grad": grad,
                     "unconstrained": unc.pixel_fraction(base.model_for(cam), cam, alpha_min=base.alpha_min,
                                                         max_pairs=base.max_pairs)}
            err = view_errors(pred, gt)
            sky = _sky_mask(data_root, d, frame.timestep, frame.cam_name, size) if cfg.exclude_sky else None
            keep = np.flatnonzero(~sky.reshape(-1).numpy()) if sky is not None else np.arange(size[0] * size[1])
            pick = np.sort(rng.choice(keep, size=min(cfg.samples_per_view, keep.size), replace=False))

            def flat(t: Tensor) -> np.ndarray:
                return t.reshape(-1).detach().cpu().double().numpy()[pick]

            masks = {k: flat(load_gt_mask(data_root, d, k, frame.timestep, frame.cam_name, size)) > 0.5 for k in kinds}
            l1, dssim, se = flat(err["l1"]), flat(err["dssim"]), flat(err["se"])
            control = flat(maps[CONTROL])
            measures, curves = {}, {}
            for m, t in maps.items():
                row, curves[m] = map_measures(flat(t), l1, dssim, se, control, masks, FRACTIONS)
                measures[m] = {k: _plain(v) for k, v in row.items()}
            curves["error"] = retained_mse(l1, se, FRACTIONS).tolist()
            views.append({"shift": d, "frame": i, "timestep": frame.timestep, "cam": frame.cam_name,
                          "pixels": int(pick.size), "psnr": psnr_of(flat(err["se"])),
                          "positives": {k: int(v.sum()) for k, v in masks.items()},
                          "measures": measures, "retained_mse": curves})
    del sessions, base
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"scene": name, "data": str(data_root), "maps": [*cfg.forms, *BASELINES], "masks": status,
            "measures": measure_names(kinds), "fractions": list(FRACTIONS), "unconstrained": unc.to_dict(),
            "views": views}
