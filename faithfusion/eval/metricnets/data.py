"""Where do the metric networks learn from? SynthStreet ground-truth views of whole scenes, as arrays.

`ensure_scene` writes a scene at the quick demo's size (192 x 128, 16 frames, 3 cameras, shifts 1-6 m both ways,
no observation masks) unless a complete one is there; `view_arrays` reads every view of the scenes (images,
lane-line masks, kept and ignored vehicle boxes) into one dict of arrays, cached as an .npz keyed by the scene list.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from faithfusion.eval.structure_truth import lane_mask_path, shift_dir, split_vehicles
from faithfusion.utils.atomic import atomic_write

TRAIN_SEEDS = tuple(range(0, 8))
HELDOUT_SEEDS = tuple(range(8, 13))
QUICK = {"frames": 16, "width": 192, "height": 128, "shifts": (1, 2, 3, 4, 5, 6)}


def ensure_scene(root: Path, seed: int, size: dict = QUICK) -> Path:
    """SynthStreet scene `seed` (classic look) in `root/seed_N`, generated unless complete (scene.json written)."""
    from faithfusion.synth.generate import generate

    out = Path(root) / f"seed_{seed}"
    if (out / "scene.json").is_file() and (shift_dir(out, 0.0) / "lane_masks").is_dir():
        return out
    generate(out, seed, frames=size["frames"], width=size["width"], height=size["height"], shifts=size["shifts"],
             observation=False, overwrite=True)
    return out


def scene_views(scene: Path) -> list[tuple[float, int, int]]:
    """Every (shift, timestep, camera) of a scene."""
    meta = json.loads((Path(scene) / "scene.json").read_text())
    return [(float(d), t, int(cam)) for d in meta["shifts_m"] for t in range(meta["frames"]) for cam in sorted(meta["cameras"], key=int)]


def view_arrays(scenes: list[Path]) -> dict[str, np.ndarray]:
    """images [N, H, W, 3] uint8, lanes [N, H, W] bool, boxes [M, 6] (view, kept 1 / ignored 0, x0, y0, x1, y1),
    views [N, 4] (scene index, shift, timestep, camera)."""
    from PIL import Image

    images, lanes, boxes, views = [], [], [], []
    for si, scene in enumerate(scenes):
        meta = json.loads((Path(scene) / "scene.json").read_text())
        W, H = meta["width"], meta["height"]
        table = {d: json.loads((shift_dir(scene, d) / "boxes_2d.json").read_text()) for d in meta["shifts_m"]}
        for d, t, cam in scene_views(scene):
            img_dir = shift_dir(scene, d) / "images"
            path = next(p for p in (img_dir / f"{t:03d}_{cam}.jpg", img_dir / f"{t:03d}_{cam}.png") if p.is_file())
            n = len(images)
            images.append(np.asarray(Image.open(path).convert("RGB")))
            lanes.append(np.asarray(Image.open(lane_mask_path(scene, d, t, cam))) > 127)
            kept, ignored = split_vehicles(table[d].get(f"{t:03d}_{cam}", []), W, H)
            boxes += [[n, 1, *b] for b in kept] + [[n, 0, *b] for b in ignored]
            views.append([si, d, t, cam])
    return {"images": np.stack(images), "lanes": np.stack(lanes), "boxes": np.asarray(boxes, np.float32).reshape(-1, 6),
            "views": np.asarray(views, np.float32)}


def cached_view_arrays(cache: Path, scenes: list[Path]) -> dict[str, np.ndarray]:
    """`view_arrays` through an .npz cache that records which scene folders it holds."""
    key = np.array([str(Path(s).resolve()) for s in scenes])
    if Path(cache).is_file():
        with np.load(cache) as z:
            if list(z["scenes"]) == list(key):
                return {k: z[k] for k in ("images", "lanes", "boxes", "views")}
    arrays = view_arrays(scenes)
    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, scenes=key, **arrays)

    atomic_write(Path(cache), save=save, what="metric-network data cache")
    return arrays
