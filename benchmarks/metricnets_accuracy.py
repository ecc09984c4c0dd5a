"""The ceiling of NTA-IoU / NTL-IoU: the metric networks on ground-truth renders of held-out SynthStreet seeds.

Every view (all shifts, both signs) of seeds 8-12 at the quick size (192 x 128, 16 frames, 3 cameras). Vehicle
AP50: detections of all views ranked by score, a detection is right when it takes a not yet matched kept vehicle
with IoU >= 0.5, ignored when it lies on an ignored vehicle (IoU >= 0.5 or half of it inside one), wrong otherwise;
all-point interpolated area under the precision envelope. Lane IoU: per view, mean over the views that show lane
lines (the NTL-IoU of the ground truth itself), and pooled (all intersections over all unions). Also NTA-IoU of the
ground truth per |shift|: what a perfect render would score.

    python benchmarks/metricnets_accuracy.py --work /tmp/metricnets_heldout --out benchmarks/results/metricnets_cpu.json
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
from faithfusion.eval.metricnets.data import HELDOUT_SEEDS, cached_view_arrays, ensure_scene  # noqa: E402
from faithfusion.eval.metricnets.shipped import SHIPPED, load_metricnets  # noqa: E402
from faithfusion.eval.structure import box_iou, mask_iou, match_ious, pool  # noqa: E402
from faithfusion.utils.jsonio import save_json_atomic  # noqa: E402


PREVIOUS_KEYS = ("command", "commit", "nets", "vehicle_ap50", "lane_threshold", "nta_iou_of_ground_truth",
                 "lane_iou_mean_per_view", "lane_iou_pooled", "lane_views", "by_magnitude", "previous")


def average_precision(dets: list[np.ndarray], kept: list[np.ndarray], ignored: list[np.ndarray], thr: float = 0.5) -> float:
    """VOC-style all-point AP over views: dets[v] [N, 5], kept[v] [G, 4], ignored[v] [I, 4]."""
    records = []  # (score, 1 right / 0 wrong)
    for d, g, ig in zip(dets, kept, ignored):
        taken = np.zeros(len(g), bool)
        for box in d[np.argsort(-d[:, 4])]:
            if len(g):
                iou = box_iou(box[None, :4], g)[0]
                iou[taken] = -1
                k = int(np.argmax(iou))
                if iou[k] >= thr:
                    taken[k] = True
                    records.append((box[4], 1))
                    continue
            if len(ig):
                inter = box_iou(box[None, :4], ig)[0]
                x0, y0 = np.maximum(box[0], ig[:, 0]), np.maximum(box[1], ig[:, 1])
                x1, y1 = np.minimum(box[2], ig[:, 2]), np.minimum(box[3], ig[:, 3])
                inside = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None) / max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
                if (inter >= thr).any() or (inside >= 0.5).any():
                    continue
            records.append((box[4], 0))
    n_gt = sum(len(g) for g in kept)
    if not records or not n_gt:
        return 0.0
    records.sort(key=lambda r: -r[0])
    tp = np.cumsum([r[1] for r in records])
    fp = np.cumsum([1 - r[1] for r in records])
    recall = np.concatenate([[0], tp / n_gt, [tp[-1] / n_gt]])
    precision = np.concatenate([[1], tp / (tp + fp), [0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * precision[1:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="where the held-out scenes and their view cache go")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(HELDOUT_SEEDS))
    ap.add_argument("--nets", type=Path, default=None, help="metric-network folder (default: the shipped ones)")
    ap.add_argument("--ap-threshold", type=float, default=0.05,
                    help="detection score floor for AP50 (the ranking covers the scores down to it); NTA-IoU uses the nets' own threshold")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--keep-previous", action="store_true",
                    help="keep the headline figures of the --out file already there under `previous` (and its own `previous`)")
    args = ap.parse_args()
    previous = None
    if args.keep_previous and args.out.is_file():
        import json

        old = json.loads(args.out.read_text())
        previous = {k: old[k] for k in PREVIOUS_KEYS if k in old}
    t0 = time.time()
    scenes = [ensure_scene(args.work / "scenes", s) for s in args.seeds]
    arrays = cached_view_arrays(args.work / "heldout_views.npz", scenes)
    t_data = time.time() - t0
    detector, segmenter = load_metricnets(args.nets)
    N = len(arrays["images"])
    views = arrays["views"]
    dets, kept, ignored, rows = [], [], [], []
    inter = union = 0
    t1 = time.time()
    for i in range(N):
        image = torch.from_numpy(arrays["images"][i]).float() / 255.0
        b = arrays["boxes"][arrays["boxes"][:, 0] == i]
        g, ig = b[b[:, 1] == 1, 2:].astype(np.float64), b[b[:, 1] == 0, 2:].astype(np.float64)
        d = detector.detect(image)  # [N, 5] at the nets' own threshold: NTA-IoU
        floor = detector.threshold
        detector.threshold = args.ap_threshold
        dets.append(detector.detect(image))  # down to the AP floor: AP50
        detector.threshold = floor
        kept.append(g)
        ignored.append(ig)
        lane = arrays["lanes"][i]
        pred = segmenter.segment(image)
        row = {"shift": float(views[i, 1]), "nta_iou": None, "nta_count": 0, "ntl_iou": None}
        if len(g):
            ious = match_ious(g, d)
            row["nta_iou"], row["nta_count"] = float(ious.mean()), len(ious)
        if lane.any():
            row["ntl_iou"] = mask_iou(pred, lane)
            inter += int(np.logical_and(pred, lane).sum())
            union += int(np.logical_or(pred, lane).sum())
        rows.append(row)
    t_eval = time.time() - t1
    by_mag = {}
    for mag in sorted({abs(r["shift"]) for r in rows}):
        idx = [i for i, r in enumerate(rows) if abs(r["shift"]) == mag]
        by_mag[f"{mag:.1f}"] = {"ap50": average_precision([dets[i] for i in idx], [kept[i] for i in idx], [ignored[i] for i in idx]),
                                **pool([rows[i] for i in idx]), "views": len(idx)}
    overall = pool(rows)
    result = {
        "what": "metric networks on ground-truth renders of held-out SynthStreet seeds (classic look, all views of every shift)",
        "command": "python " + " ".join(sys.argv),
        "device": device_name(torch.device("cpu")) + ", shared 2-core machine",
        "commit": git_commit(),
        "nets": str(args.nets or SHIPPED),
        "seeds": args.seeds,
        "views": N,
        "vehicles_kept": int(sum(len(g) for g in kept)),
        "vehicles_ignored": int(sum(len(g) for g in ignored)),
        "vehicle_ap50": average_precision(dets, kept, ignored),
        "ap_score_floor": args.ap_threshold,
        "detection_threshold": detector.threshold,
        "lane_threshold": segmenter.threshold,
        "nta_iou_of_ground_truth": overall["nta_iou"],
        "lane_iou_mean_per_view": overall["ntl_iou"],
        "lane_iou_pooled": inter / union if union else None,
        "lane_views": overall["ntl_views"],
        "by_magnitude": by_mag,
        "goals": {"vehicle_ap50": 0.9, "lane_iou": 0.8},
        "seconds": {"data": round(t_data, 1), "eval": round(t_eval, 1)},
    }
    if previous is not None:
        result["previous"] = previous
    save_json_atomic(args.out, result, indent=1)
    print({k: result[k] for k in ("vehicle_ap50", "nta_iou_of_ground_truth", "lane_iou_mean_per_view", "lane_iou_pooled", "views")})


if __name__ == "__main__":
    main()
