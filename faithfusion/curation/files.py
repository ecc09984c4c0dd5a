"""The files of a sample: PNG images, float16 maps, paths relative to the dataset folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from faithfusion.curation.snapshots import Render
from faithfusion.utils.atomic import atomic_save_npy, atomic_write


def rel(p: Path, root: Path) -> str:
    return Path(p).relative_to(root).as_posix()


def save_png(path: Path, img: Tensor | np.ndarray) -> None:
    """[H, W, 3] float in [0, 1] or uint8 -> PNG, written atomically."""
    arr = img.detach().cpu().numpy() if isinstance(img, Tensor) else np.asarray(img)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    atomic_write(path, save=lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"), what="curated image")


def save_map(path: Path, m: Tensor | np.ndarray) -> None:
    """[H, W] -> float16 .npy."""
    arr = m.detach().cpu().numpy() if isinstance(m, Tensor) else np.asarray(m)
    atomic_save_npy(path, np.clip(arr.astype(np.float32), -65000, 65000).astype(np.float16), "curated map")


def write_frame(folder: Path, stem: str, root: Path, r: Render, target: Tensor, g: Tensor | None) -> dict[str, str]:
    """One degraded/target pair and its maps -> relative paths."""
    files = {"degraded": folder / f"{stem}_degraded.png", "target": folder / f"{stem}_target.png",
             "depth": folder / f"{stem}_depth.npy", "alpha": folder / f"{stem}_alpha.npy"}
    save_png(files["degraded"], r.rgb)
    save_png(files["target"], target)
    save_map(files["depth"], r.depth)
    save_map(files["alpha"], r.alpha)
    if g is not None:
        files["eig"] = folder / f"{stem}_eig.npy"
        save_map(files["eig"], g)
    return {k: rel(p, root) for k, p in files.items()}
