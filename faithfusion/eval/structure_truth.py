"""What should a detector find in a SynthStreet view? The vehicle boxes and the lane-line mask of its ground truth.

Vehicles: the 3D boxes of `gt_shifted/{d}/boxes_2d.json` projected into the view (`box_projected`: clipped at the
near plane and to the image), kept when the vehicle is visible enough to be detected: at least `MIN_PIXELS` of
its pixels in a 192 x 128 image (scaled with the image area) and at least `MIN_SHARE` of its projected box
covered by its own pixels (so a car almost hidden behind another is not asked for). The vehicles seen but below
these bounds are returned apart (`ignore`): a detection on one of them is neither right nor wrong.
Lanes: `gt_shifted/{d}/lane_masks/{t}_{cam}.png` (faithfusion.synth.lane_mask), None where the scene predates it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MIN_PIXELS = 40  # at 192 x 128
MIN_SHARE = 0.2
REFERENCE_AREA = 192 * 128


@dataclass
class ViewTruth:
    """Ground truth of one view in pixels of `size` (H, W)."""

    boxes: np.ndarray  # [G, 4] x0, y0, x1, y1: vehicles to find
    ignore: np.ndarray  # [I, 4] vehicles seen but too small or hidden
    lanes: np.ndarray | None  # [H, W] bool lane-line mask, None when the scene has none


def shift_dir(root: Path, d: float) -> Path:
    return Path(root) / "gt_shifted" / f"{d:+.1f}m"


@lru_cache(maxsize=64)
def _boxes_file(path: str, mtime: float) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable boxes file ({e})") from e


def boxes_json(root: Path, d: float) -> dict:
    path = shift_dir(root, d) / "boxes_2d.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (a SynthStreet scene's per-view vehicle boxes)")
    return _boxes_file(str(path), path.stat().st_mtime)


def split_vehicles(entries: list[dict], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept [G, 4], ignored [I, 4]) projected boxes of one view's `boxes_2d.json` entries (pixels of width x height)."""
    min_px = MIN_PIXELS * width * height / REFERENCE_AREA
    kept, ignored = [], []
    for e in entries:
        box = e.get("box_projected")
        if box is None:
            continue
        area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
        ok = e["visible_pixels"] >= min_px and e["visible_pixels"] / area >= MIN_SHARE
        (kept if ok else ignored).append(box)
    as_array = lambda b: np.asarray(b, np.float64).reshape(-1, 4)  # noqa: E731
    return as_array(kept), as_array(ignored)


@lru_cache(maxsize=64)
def scene_size(root: str) -> tuple[int, int]:
    """(width, height) of a SynthStreet scene's images (scene.json)."""
    path = Path(root) / "scene.json"
    try:
        meta = json.loads(path.read_text())
        return int(meta["width"]), int(meta["height"])
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: not a readable SynthStreet scene.json ({e})") from e


def lane_mask_path(root: Path, d: float, timestep: int, cam: str | int) -> Path:
    return shift_dir(root, d) / "lane_masks" / f"{timestep:03d}_{cam}.png"


def view_truth(root: Path, d: float, timestep: int, cam: str | int, size: tuple[int, int] | None = None) -> ViewTruth:
    """The vehicles and lane lines of view (timestep, cam) at shift d, scaled to `size` = (H, W) when given."""
    from PIL import Image

    W0, H0 = scene_size(str(root))
    H, W = size or (H0, W0)
    kept, ignored = split_vehicles(boxes_json(root, d).get(f"{timestep:03d}_{cam}", []), W0, H0)
    scale = np.array([W / W0, H / H0, W / W0, H / H0])
    lanes = None
    path = lane_mask_path(root, d, timestep, cam)
    if path.is_file():
        img = Image.open(path)
        if img.size != (W, H):
            img = img.resize((W, H), Image.Resampling.NEAREST)
        lanes = np.asarray(img) > 127
    return ViewTruth(kept * scale, ignored * scale, lanes)
