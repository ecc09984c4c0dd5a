"""NTA-IoU and NTL-IoU: are the vehicles and lane lines of a novel-view render where the ground truth puts them?

NTA-IoU (novel trajectory agent IoU): a vehicle detector runs on the render; its boxes are matched one to one
to the ground-truth boxes of the view (the 3D boxes projected into it, `structure_truth`) greedily by IoU; each
ground-truth vehicle scores the IoU of its match (0 when unmatched); NTA-IoU is the mean over all ground-truth
vehicles of the evaluated views. NTL-IoU (novel trajectory lane IoU): a lane-line segmenter runs on the render;
its mask against the view's ground-truth lane-line mask, IoU per view, averaged over the views that show lane
lines. docs/eval.md gives the sources of these definitions.

Any detector fits through the two protocols below; `load_user_model("module:factory")` builds one from the
user's own code (the factory is called without arguments).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from torch import Tensor

from faithfusion.errors import UserError
from faithfusion.eval.structure_truth import view_truth


@runtime_checkable
class VehicleDetector(Protocol):
    """image [H, W, 3] float in [0, 1] (torch, CPU) -> boxes [N, 4] or [N, 5] (x0, y0, x1, y1[, score]) in pixels
    of that image; pixel i spans [i, i + 1). Return only the detections it stands by (its own threshold)."""

    def detect(self, image: Tensor) -> np.ndarray | Tensor: ...


@runtime_checkable
class LaneSegmenter(Protocol):
    """image [H, W, 3] float in [0, 1] (torch, CPU) -> lane-line mask [H, W] bool."""

    def segment(self, image: Tensor) -> np.ndarray | Tensor: ...


def load_user_model(spec: str, protocol: type):
    """`module.path:factory` -> factory(), checked against `protocol` (VehicleDetector or LaneSegmenter)."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise UserError(f"{spec!r}: expected MODULE:FACTORY (for example mypkg.detectors:make_detector)")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise UserError(f"{spec!r}: cannot load ({e})") from e
    model = factory()
    if not isinstance(model, protocol):
        raise UserError(f"{spec!r}: {type(model).__name__} has no {'detect' if protocol is VehicleDetector else 'segment'}() method")
    return model


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # a [N, 4], b [M, 4] -> [N, M]
    """IoU of axis-aligned boxes (x0, y0, x1, y1)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match_ious(gt: np.ndarray, det: np.ndarray) -> np.ndarray:  # [G]
    """Per ground-truth box the IoU of its detection, matched one to one greedily by IoU (0 when unmatched)."""
    gt = np.asarray(gt, np.float64).reshape(-1, 4)
    det = np.asarray(det, np.float64)
    det = det.reshape(-1, det.shape[-1] if det.size else 4)[:, :4]
    out = np.zeros(len(gt))
    if not len(gt) or not len(det):
        return out
    iou = box_iou(gt, det)
    gt_done = np.zeros(len(gt), bool)
    det_taken = np.zeros(len(det), bool)
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        g, k = np.unravel_index(flat, iou.shape)
        if iou[g, k] <= 0:
            break
        if not gt_done[g] and not det_taken[k]:
            out[g], gt_done[g], det_taken[k] = iou[g, k], True, True
    return out


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float | None:
    """|pred & gt| / |pred | gt|; None when both are empty."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if pred.shape != gt.shape:
        raise ValueError(f"lane mask shape {pred.shape} differs from the ground truth's {gt.shape}")
    union = np.logical_or(pred, gt).sum()
    return None if union == 0 else float(np.logical_and(pred, gt).sum() / union)


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


class StructureEval:
    """NTA-IoU and NTL-IoU of renders of one SynthStreet scene. Either model may be None (that measure is skipped)."""

    def __init__(self, root: Path, detector: VehicleDetector | None, segmenter: LaneSegmenter | None, name: str = ""):
        self.root, self.detector, self.segmenter, self.name = Path(root), detector, segmenter, name

    def view(self, image: Tensor, d: float, timestep: int, cam: str | int) -> dict:
        """{"nta_iou", "nta_count", "ntl_iou"} of one render `image [H, W, 3]`; None where the view has no ground truth."""
        truth = view_truth(self.root, d, timestep, cam, tuple(image.shape[:2]))
        out: dict = {"nta_iou": None, "nta_count": 0, "ntl_iou": None}
        if self.detector is not None and len(truth.boxes):
            ious = match_ious(truth.boxes, _numpy(self.detector.detect(image)))
            out["nta_iou"], out["nta_count"] = float(ious.mean()), len(ious)
        if self.segmenter is not None and truth.lanes is not None and truth.lanes.any():
            out["ntl_iou"] = mask_iou(_numpy(self.segmenter.segment(image)), truth.lanes)
        return out


def pool(rows: list[dict]) -> dict:
    """NTA-IoU over all ground-truth vehicles of `rows` (weighted by nta_count), NTL-IoU over the views with lanes."""
    n = sum(r.get("nta_count", 0) for r in rows if r.get("nta_iou") is not None)
    nta = sum(r["nta_iou"] * r["nta_count"] for r in rows if r.get("nta_iou") is not None) / n if n else None
    lanes = [r["ntl_iou"] for r in rows if r.get("ntl_iou") is not None]
    return {"nta_iou": nta, "nta_vehicles": n, "ntl_iou": float(np.mean(lanes)) if lanes else None, "ntl_views": len(lanes)}
