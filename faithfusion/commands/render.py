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
    video: Path | None = None
    """Write an MP4 of the drive (every frame of --camera, in timestep order) at --shift instead of PNGs."""
    side_by_side: str | None = None
    """With --video: `eig` (the calibrated EIG heatmap beside the render) or a second run folder (A/B)."""
    camera: str | None = None
    """With --video: the scene camera whose frames make the drive (default: the first camera)."""
    fps: float = 10.0
    max_frames: int = 0
    """With --video: at most this many frames, spread over the drive (0 = all)."""


def render_run(cfg: RenderConfig) -> list[Path]:
    import imageio.v3 as iio

    if cfg.video is not None:
        return [render_video(cfg)]
    if cfg.side_by_side is not None:
        from faithfusion.utils.flags import FlagError

        raise FlagError("--side-by-side needs --video OUT.mp4")

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


def render_video(cfg: RenderConfig) -> Path:
    """`--video`: the drive along the shifted lane as MP4, optionally beside the EIG heatmap or a second run."""
    from faithfusion.utils.device import resolve_device
    from faithfusion.utils.flags import FlagError, require_at_least, require_device, require_finite, require_positive
    from faithfusion.viewer.video import label, side_by_side, write_mp4
    from faithfusion.viewer.frames import EIG_DISPLAY_MAX, RunView

    require_finite("--shift", cfg.shift)
    require_device("--device", cfg.device)
    require_positive("--fps", cfg.fps)
    require_at_least("--max-frames", cfg.max_frames, 0)
    out = Path(cfg.video)
    if out.suffix.lower() != ".mp4":
        raise FlagError(f"--video {out}: the file name must end in .mp4")
    if out.exists() and not cfg.overwrite:
        raise FileExistsError(f"{out}: video exists; pass --overwrite to replace it")
    device = resolve_device(cfg.device).type
    view = RunView(cfg.run, device)
    other = None
    if cfg.side_by_side not in (None, "eig"):
        if not Path(cfg.side_by_side).is_dir():
            raise FlagError(f"--side-by-side {cfg.side_by_side}: neither `eig` nor a run folder")
        other = RunView(Path(cfg.side_by_side), device)
    ids = view.drive(cfg.camera)
    if cfg.max_frames and len(ids) > cfg.max_frames:
        ids = [ids[round(k * (len(ids) - 1) / (cfg.max_frames - 1))] for k in range(cfg.max_frames)] if cfg.max_frames > 1 else ids[:1]
    name = Path(cfg.run).resolve().name
    shift = f"{cfg.shift:+.1f} m"

    def frames():
        for i in ids:
            left = label(view.layer("render", i, cfg.shift).image, f"{name} {shift}")
            if cfg.side_by_side is None:
                yield left
            elif other is None:
                yield side_by_side([left, label(view.layer("eig", i, cfg.shift).image, f"EIG g 0-{EIG_DISPLAY_MAX:g}")])
            else:
                j = matching_frame(view, other, i)
                right = label(other.layer("render", j, cfg.shift).image, f"{Path(cfg.side_by_side).resolve().name} {shift}")
                yield side_by_side([left, right])

    write_mp4(out, frames(), cfg.fps)
    print(f"wrote {len(ids)} frames at {shift} to {out} (run {view.info['run']}, commit {view.info['commit'][:12]})")
    return out


def matching_frame(a, b, i: int) -> int:
    """The frame of run view `b` with the timestep and camera of frame `i` of run view `a` (A/B on one scene)."""
    from faithfusion.viewer.frames import ViewerError

    f = a.scene.frames[i]
    for j, g in enumerate(b.scene.frames):
        if g.timestep == f.timestep and g.cam_name == f.cam_name:
            return j
    raise ViewerError(f"{b.run}: no frame at timestep {f.timestep} of camera {f.cam_name!r}; "
                      "--side-by-side RUN2 must be a run of the same scene")
