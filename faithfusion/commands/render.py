"""`faithfusion render`: render a run's cameras, optionally from a lane shifted sideways."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch


@dataclass
class RenderConfig:
    """Render a trained run from its own cameras or from a lane shifted by --shift metres (left +)."""

    run: Path = Path("runs/recon")
    out: Path | None = None
    """Folder for the images (default: RUN/novel)."""
    shift: float = 0.0
    """Lateral shift of the ego in metres, positive = left."""
    cameras: Literal["test", "train", "all"] = "test"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    save_depth: bool = True
    overwrite: bool = False


def render_run(cfg: RenderConfig) -> list[Path]:
    import imageio.v3 as iio

    from faithfusion.train.run import load_run
    from faithfusion.utils.device import resolve_device

    from faithfusion.utils.atomic import atomic_save_npy, atomic_write, make_output_folder
    from faithfusion.utils.flags import require_device, require_finite

    require_finite("--shift", cfg.shift)
    require_device("--device", cfg.device)
    out = Path(cfg.out) if cfg.out is not None else Path(cfg.run) / "novel"
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise FileExistsError(f"{out}: output folder is not empty; pass --overwrite to replace its files")
    make_output_folder(out, "render folder")
    loaded = load_run(cfg.run, resolve_device(cfg.device))
    scene, trainer = loaded.scene, loaded.trainer
    ids = {"test": scene.test_ids, "train": scene.train_ids, "all": list(range(len(scene.frames)))}[cfg.cameras]
    written = []
    with torch.no_grad():
        for i in ids:
            cam = scene.shifted_camera(i, cfg.shift, loaded.cfg.scale).to(trainer.device)
            rgb, res = trainer.render_camera(cam)
            stem = f"{i:04d}_{scene.frames[i].cam_name}"
            path = out / f"{stem}.png"
            image = (rgb.clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
            atomic_write(path, save=lambda tmp: iio.imwrite(tmp, image, extension=".png"), what="render")
            written.append(path)
            if cfg.save_depth:
                metres = res.depth[0, ..., 0].cpu().numpy() / scene.transform.scale
                atomic_save_npy(out / f"{stem}_depth.npy", metres.astype(np.float32), "depth")
    print(f"wrote {len(written)} views to {out}")
    return written
