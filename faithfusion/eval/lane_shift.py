"""The lane-shift protocol: quality of a run's renders against SynthStreet's ground truth at every shift.

Shift 0 is the held-out frames of the recorded lane; shift ±d renders every evaluated frame from
the ego moved d metres sideways and compares with `gt_shifted/{±d:.1f}m/images/`. The result is
`RUN/eval/lane_shift.json` (per shift and per frame) and `RUN/eval/lane_shift.png`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from faithfusion.data.scene import SceneData
from faithfusion.eval.saved_renders import load_render, save_render
from faithfusion.utils.atomic import atomic_write
from faithfusion.utils.jsonio import save_json_atomic


def shift_folder(root: Path, d: float) -> Path:
    return Path(root) / "gt_shifted" / f"{d:+.1f}m"


def available_shifts(root: Path) -> list[float]:
    """Positive shift magnitudes present in a SynthStreet folder (both signs required)."""
    found = set()
    for p in (Path(root) / "gt_shifted").glob("*m"):
        try:
            d = float(p.name[:-1])
        except ValueError:
            continue
        if d > 0 and shift_folder(root, -d).is_dir():
            found.add(d)
    return sorted(found)


def gt_image_path(root: Path, d: float, timestep: int, cam: str) -> Path:
    """The ground-truth image file of one shifted view (.jpg or .png)."""
    folder = shift_folder(root, d) / "images"
    path = next((p for p in (folder / f"{timestep:03d}_{cam}.jpg", folder / f"{timestep:03d}_{cam}.png") if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"{folder / f'{timestep:03d}_{cam}.jpg'}: ground-truth image missing")
    return path


def load_gt_image(root: Path, d: float, timestep: int, cam: str, size: tuple[int, int]) -> Tensor:
    """Ground-truth RGB `[H, W, 3]` in [0, 1] resized (area) to `size` = (H, W)."""
    from PIL import Image

    img = Image.open(gt_image_path(root, d, timestep, cam)).convert("RGB")
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.BOX)
    return torch.from_numpy(np.asarray(img).copy()).float() / 255.0


@dataclass
class ShiftViews:
    """The cameras and targets of one shift: (frame index, camera, gt image) triples."""

    shift: float
    items: list[tuple[int, object, Tensor]]


def shift_views(scene: SceneData, root: Path, d: float, frame_ids: list[int], scale: float) -> ShiftViews:
    items = []
    for i in frame_ids:
        frame = scene.frames[i]
        cam = scene.shifted_camera(i, d, scale)
        gt = load_gt_image(root, d, frame.timestep, frame.cam_name, (cam.height, cam.width))
        items.append((i, cam, gt))
    return ShiftViews(d, items)


def evaluate_lane_shift(
    render_fn,
    scene: SceneData,
    data_root: Path,
    shifts: list[float] | None = None,
    frame_stride: int = 1,
    scale: float = 1.0,
    metrics=None,
    distribution=None,
    save_renders: Path | None = None,
    saved_renders: Path | None = None,
    structure=None,
) -> dict:
    """PSNR / SSIM / LPIPS per shift. `render_fn(camera) -> [H, W, 3]` renders one view.

    `save_renders` keeps every evaluated render as a PNG under that folder (eval.saved_renders); with
    `saved_renders` the views are read from such a folder instead of rendered (`render_fn` may be None).

    Shift 0 uses the scene's held-out frames; other shifts use every `frame_stride`-th frame
    (all cameras), both signs. With `distribution` (eval.distribution.DistributionEval) each shift and each
    magnitude also gets FID / KID of its renders against the ground truth of the same views and against
    the captured training frames (features pooled over both signs for a magnitude). With `structure`
    (eval.structure.StructureEval) each view also gets NTA-IoU and NTL-IoU against its projected ground truth,
    pooled per shift and magnitude (eval.structure.pool)."""
    from faithfusion.eval.metrics import Metrics

    metrics = metrics or Metrics()
    shifts = available_shifts(data_root) if shifts is None else [abs(s) for s in shifts if s != 0]
    all_ids = [i for i in range(len(scene.frames)) if scene.frames[i].timestep % max(frame_stride, 1) == 0]
    plan: list[tuple[float, list[int]]] = [(0.0, list(scene.test_ids))]
    for d in shifts:
        plan += [(d, all_ids), (-d, all_ids)]
    per_shift: dict[str, dict] = {}
    feats: dict[str, tuple] = {}  # shift key -> (render features, gt features)
    for d, ids in plan:
        if not ids:
            continue
        rows, preds, gts, files = [], [], [], []
        for i, cam, gt in shift_views(scene, data_root, d, ids, scale).items:
            t, cam_name = scene.frames[i].timestep, scene.frames[i].cam_name
            if saved_renders is not None:
                pred = load_render(saved_renders, d, t, cam_name, (cam.height, cam.width))
            else:
                with torch.no_grad():
                    pred = render_fn(cam).clamp(0, 1).cpu()
            if save_renders is not None:
                save_render(save_renders, d, t, cam_name, pred)
            values = metrics(pred[None], gt[None])
            if structure is not None:
                values |= structure.view(pred, d, scene.frames[i].timestep, scene.frames[i].cam_name)
            rows.append({"frame": i, "timestep": scene.frames[i].timestep, "cam": scene.frames[i].cam_name, **values})
            if distribution is not None:
                preds.append(pred)
                gts.append(gt)
                files.append(gt_image_path(data_root, d, scene.frames[i].timestep, scene.frames[i].cam_name))
        key = f"{d:+.1f}"
        per_shift[key] = {"shift": d, "mean": mean_metrics(rows), "frames": rows}
        if distribution is not None:
            feats[key] = (distribution.features(preds), distribution.of_files(gts, files))
    train = distribution.train_features(scene, scale) if distribution is not None and feats else None
    for key, (fr, fg) in feats.items():
        per_shift[key]["mean"] |= distribution.scores(fr, fg, train)
    by_magnitude = {}
    for mag in [0.0] + shifts:
        keys = [key for key, v in per_shift.items() if abs(v["shift"]) == mag]
        rows = [r for key in keys for r in per_shift[key]["frames"]]
        if rows:
            by_magnitude[f"{mag:.1f}"] = mean_metrics(rows)
            if distribution is not None:
                fr = np.concatenate([feats[k][0] for k in keys])
                fg = np.concatenate([feats[k][1] for k in keys])
                by_magnitude[f"{mag:.1f}"] |= distribution.scores(fr, fg, train)
    if distribution is not None:
        distribution.save()
    out = {"lpips_net": metrics.lpips_net, "per_shift": per_shift, "by_magnitude": by_magnitude}
    if structure is not None:
        out["structure_models"] = structure.name
    return out


def mean_metrics(rows: list[dict]) -> dict:
    """Means of PSNR / SSIM / LPIPS over `rows`; NTA-IoU / NTL-IoU pooled (eval.structure.pool) where rows hold them."""
    keys = [k for k in ("psnr", "ssim", "lpips") if rows and rows[0].get(k) is not None]
    out = {k: float(np.mean([r[k] for r in rows])) for k in keys} | {"count": len(rows)}
    if rows and "nta_iou" in rows[0]:
        from faithfusion.eval.structure import pool

        out |= pool(rows)
    return out


def lane_shift_figure(curves: dict[str, dict], title: str = ""):
    """Quality against |shift| for one or more methods: curves = {name: by_magnitude}; a matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from faithfusion.eval.lpips import LPIPS_NAME

    keys = ["psnr", "ssim", "lpips"] + [k for k in ("fid", "kid", "nta_iou", "ntl_iou")
                                        if any(v.get(k) is not None for c in curves.values() for v in c.values())]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.3 * len(keys), 3.6))
    labels = {"psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": LPIPS_NAME, "fid": "FID (vs ground truth)", "kid": "KID (vs ground truth)",
              "nta_iou": "NTA-IoU", "ntl_iou": "NTL-IoU"}
    for name, by_mag in curves.items():
        mags = sorted(float(m) for m in by_mag)
        for ax, key in zip(axes, keys):
            ys = [by_mag[f"{m:.1f}"].get(key) for m in mags]
            if ys and all(y is not None for y in ys):
                ax.plot(mags, ys, marker="o", label=name)
    for ax, key in zip(axes, keys):
        ax.set_xlabel("lane shift |d| (m)")
        ax.set_ylabel(labels[key])
        ax.grid(alpha=0.3)
    axes[0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_lane_shift(curves: dict[str, dict], path: Path, title: str = "") -> None:
    """`lane_shift_figure` saved as a PNG."""
    import matplotlib.pyplot as plt

    fig = lane_shift_figure(curves, title)
    atomic_write(path, save=lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


STRIP_SHIFTS = (0.0, 3.0, 6.0)


def view_strip(render_fn, scene: SceneData, data_root: Path, shifts: list[float], scale: float = 1.0,
               fixed_fn=None) -> dict[float, dict[str, Tensor]]:
    """Ground truth, render (and `fixed_fn`'s output) of the first held-out frame at each of `shifts`
    that the scene holds among 0, 3 and 6 m: {shift: {"gt", "render"[, "fixed"]: [H, W, 3]}}."""
    frame_id = scene.test_ids[0] if scene.test_ids else 0
    out: dict[float, dict[str, Tensor]] = {}
    for d in [s for s in STRIP_SHIFTS if s == 0.0 or s in shifts]:
        (_, cam, gt), = shift_views(scene, data_root, d, [frame_id], scale).items
        with torch.no_grad():
            out[d] = {"gt": gt, "render": render_fn(cam).clamp(0, 1).cpu()}
            if fixed_fn is not None:
                out[d]["fixed"] = fixed_fn(cam).clamp(0, 1).cpu()
    return out


def write_lane_shift_report(run: Path, result: dict, name: str = "3dgs") -> Path:
    out = Path(run) / "eval" / "lane_shift.json"
    save_json_atomic(out, result)
    plot_lane_shift({name: result["by_magnitude"]}, out.with_suffix(".png"), title=str(run))
    return out


def summary_line(result: dict) -> str:
    """`0.0m: 24.10 dB/0.265 FID 80.1  3.0m: ...  (PSNR / LPIPS (SqueezeNet-1.1, v0.1))`: the network named beside the figures."""
    line = "  ".join(
        f"{m}m: {v['psnr']:.2f} dB" + (f"/{v['lpips']:.3f}" if "lpips" in v else "")
        + (f" FID {v['fid']:.1f}" if v.get("fid") is not None else "") for m, v in result["by_magnitude"].items()
    )
    return f"{line}  (PSNR / {result.get('lpips_net', 'LPIPS: network not recorded')})"
